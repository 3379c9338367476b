"""benchmarks/result_cache.py keeps results by their settings, so resumed parts read them back.

benchmarks/meta_rl.py keeps the untrained policy's evaluation (all of it seeded) in the run
directory this way: a run in many parts samples it once.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import result_cache  # noqa: E402


class Computation:
    """A `compute` that counts its calls and returns the next of `results`."""

    def __init__(self, *results):
        self.results, self.calls = list(results), 0

    def __call__(self):
        self.calls += 1
        return self.results.pop(0)


def test_a_result_is_computed_once_for_its_settings(tmp_path):
    path = str(tmp_path / "kept.json")
    compute = Computation([{"mean": -1.5}], [{"mean": 99.0}])
    first = result_cache.cached(path, {"seed": 0, "rates": (0.1, 0.05)}, compute)
    # The same settings as they read back from JSON (a tuple becomes a list): no second call.
    again = result_cache.cached(path, {"rates": [0.1, 0.05], "seed": 0}, compute)
    assert compute.calls == 1
    assert first == again == [{"mean": -1.5}]


def test_results_for_other_settings_are_kept_beside_each_other(tmp_path):
    path = str(tmp_path / "kept.json")
    compute = Computation(1.0, 2.0, 3.0)
    assert result_cache.cached(path, {"split": "test"}, compute) == 1.0
    assert result_cache.cached(path, {"split": "paper"}, compute) == 2.0
    assert result_cache.cached(path, {"split": "test"}, compute) == 1.0
    assert result_cache.cached(path, {"split": "paper"}, compute) == 2.0
    assert compute.calls == 2
    assert [entry["settings"] for entry in json.loads(Path(path).read_text())] == [
        {"split": "test"}, {"split": "paper"}
    ]


@pytest.mark.parametrize("text", ["[{\"settings\": {}, \"res", "{\"settings\": {}}", "[1, 2]"])
def test_an_unreadable_file_is_computed_again_and_replaced(tmp_path, text):
    path = tmp_path / "kept.json"
    path.write_text(text)
    compute = Computation(7.0)
    assert result_cache.cached(str(path), {"seed": 0}, compute) == 7.0
    assert compute.calls == 1
    assert json.loads(path.read_text()) == [{"settings": {"seed": 0}, "result": 7.0}]


def test_a_failed_computation_leaves_the_kept_results_as_they_were(tmp_path):
    path = tmp_path / "kept.json"
    result_cache.cached(str(path), {"seed": 0}, Computation(1.0))
    before = path.read_bytes()

    def fail():
        raise RuntimeError("an environment raised")

    with pytest.raises(RuntimeError, match="an environment raised"):
        result_cache.cached(str(path), {"seed": 1}, fail)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]


def run_meta_rl(run_dir: Path) -> dict:
    command = [
        sys.executable, str(BENCHMARKS / "meta_rl.py"), "--families=navigation_2d",
        "--iterations=1", "--eval_tasks=2", f"--run_dir={run_dir}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])[0]


@pytest.mark.slow  # two benchmark processes, 20 s each
def test_a_continued_meta_rl_run_reads_the_untrained_policys_figures_back(tmp_path):
    first = run_meta_rl(tmp_path)
    kept = tmp_path / "navigation_2d" / "random_init.json"
    entries = json.loads(kept.read_text())
    assert len(entries) == 1 and entries[0]["result"] == first["random_init"]
    assert entries[0]["settings"]["eval_tasks"] == 2
    assert [step["tasks"] for step in first["random_init"]] == [2, 2, 2, 2]
    # Mark the kept figure: the next part must report it rather than sample it again.
    entries[0]["result"][0]["mean"] = 12345.0
    kept.write_text(json.dumps(entries))
    before = kept.read_bytes()
    again = run_meta_rl(tmp_path)
    assert again["random_init"][0]["mean"] == 12345.0
    assert again["random_init"][1:] == first["random_init"][1:]
    # The finished run, evaluated again (threaded float reductions: equal to rounding).
    for step, step_again in zip(first["returns"], again["returns"]):
        assert step_again["mean"] == pytest.approx(step["mean"], rel=1e-5)
    assert kept.read_bytes() == before
