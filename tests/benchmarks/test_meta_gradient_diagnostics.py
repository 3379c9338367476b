"""benchmarks/meta_gradient.py on a short 2D-navigation run: consistent figures, run only read."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def run(script: str, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BENCHMARKS / script), *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def file_bytes(directory: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow  # a two-iteration training run and the diagnostics, about a minute
def test_the_diagnostics_of_a_run_agree_with_each_other_and_leave_it_unchanged(tmp_path):
    trained = run("meta_rl.py", "--families=navigation_2d", "--iterations=2", "--eval_tasks=2",
                  f"--run_dir={tmp_path}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_dir = tmp_path / "navigation_2d"
    before = file_bytes(run_dir)
    result = run("meta_gradient.py", f"--run_dir={run_dir}", "--gain_tasks=4",
                 "--gain_rollouts=20", "--log_std_shifts=-0.5,0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert file_bytes(run_dir) == before
    report = json.loads(result.stdout.strip().splitlines()[-1])
    kept, untrained = report["results"]
    assert (kept["meta_iterations"], untrained["meta_iterations"]) == (2, 0)
    for entry in (kept, untrained):
        assert 0.0 < entry["curvature"]["cosine"] <= 1.0 + 1e-6
        gradients = entry["outer_gradient"]
        # The first-order part does not depend on the inner objective: the same samples give it.
        assert gradients["likelihood_ratio"]["norm_first_order"] == pytest.approx(
            gradients["log_likelihood"]["norm_first_order"], rel=1e-4
        )
        for parts in gradients.values():
            assert all(-1.0 - 1e-6 <= value <= 1.0 + 1e-6 for value in parts["agreement"].values())
    # The unshifted log-std is the policy the gain measurement adapts: the same tasks and seed.
    assert kept["log_std"]["0.0"] == pytest.approx(kept["adaptation_gain"]["20"], rel=1e-4)
    assert kept["log_std"]["-0.5"]["before"] != pytest.approx(kept["log_std"]["0.0"]["before"])


def test_a_directory_without_a_run_is_refused(tmp_path):
    result = run("meta_gradient.py", f"--run_dir={tmp_path}")
    assert result.returncode != 0
    assert "holds no checkpoints of a run" in result.stderr
