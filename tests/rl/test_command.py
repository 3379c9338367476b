"""`tfmeta train --algorithm=maml_trpo --env=...` as a user runs it (a subprocess)."""

import json
import subprocess
import sys

import pytest

TINY = ["--env=navigation_2d", "--iterations=2", "--meta_batch_size=2"]


def _tfmeta(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "tfmeta.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
    )


@pytest.mark.slow  # a subprocess: TensorFlow's import alone takes seconds
def test_a_missing_env_is_one_error_line(tmp_path):
    result = _tfmeta("train", "--algorithm=maml_trpo", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("tfmeta: error: --algorithm=maml_trpo needs --env: one of ['ant_dir'")
    )


@pytest.mark.slow
def test_train_writes_an_evaluated_exported_run_and_continues_it(tmp_path):
    run_dir = tmp_path / "run"
    result = _tfmeta(
        "train", "--algorithm=maml_trpo", *TINY, f"--output_dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in (
        "metrics.json",
        "history.csv",
        "learning_curve.png",
        "adaptation.png",
        "checkpoints/checkpoint",
        "export/navigation_2d/1/saved_model.pb",
        "export/navigation_2d.tflite",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["meta_iterations"] == 2
    assert [entry["steps"] for entry in metrics["returns_after_steps"]] == [0, 1, 2, 3]
    assert all(entry["tasks"] == 40 for entry in metrics["returns_after_steps"])

    longer = _tfmeta(
        "train",
        "--algorithm=maml_trpo",
        "--env=navigation_2d",
        "--iterations=4",
        "--meta_batch_size=2",
        f"--output_dir={run_dir}",
        cwd=tmp_path,
    )
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "continued" in longer.stdout and "from meta-iteration 2" in longer.stdout
    assert json.loads((run_dir / "metrics.json").read_text())["meta_iterations"] == 4


def test_a_folder_that_is_not_a_run_is_refused_and_left_unchanged(tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "README.md").write_text("a user's own notes\n")
    result = _tfmeta("train", "--algorithm=maml_trpo", *TINY, f"--output_dir={own}", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a directory that is not a tfmeta run" in lines[0]
    assert sorted(path.name for path in own.iterdir()) == ["README.md"]
    assert (own / "README.md").read_text() == "a user's own notes\n"


@pytest.mark.slow  # two short HalfCheetah runs, each evaluated on 40 tasks
def test_env_processes_step_a_mujoco_run_and_leave_its_figures_unchanged(tmp_path):
    pytest.importorskip("mujoco", reason="needs the rl extra: pip install 'tfmeta[rl]'")
    returns = {}
    for processes in (1, 2):
        run_dir = tmp_path / f"run_{processes}"
        result = _tfmeta(
            "train",
            "--algorithm=maml_trpo",
            "--env=halfcheetah_vel",
            "--iterations=1",
            "--meta_batch_size=1",
            f"--env_processes={processes}",
            f"--output_dir={run_dir}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "processes" not in json.loads((run_dir / "family.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        returns[processes] = [entry["mean"] for entry in metrics["returns_after_steps"]]
    assert returns[2] == pytest.approx(returns[1], rel=1e-4)


def test_without_litert_the_run_says_why_it_wrote_no_tflite(tmp_path, monkeypatch, capsys):
    from tfmeta.cli import rl_train

    monkeypatch.setattr(rl_train.importlib.util, "find_spec", lambda name: None)
    path = tmp_path / "export" / "navigation_2d.tflite"
    assert rl_train._export_tflite(learner=None, path=path) is None
    assert "install the tflite extra (ai-edge-litert)" in capsys.readouterr().out
    assert not path.exists()
