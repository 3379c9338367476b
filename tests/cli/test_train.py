"""`tfmeta train` / `tfmeta evaluate` as a user runs them: a subprocess, files, exit codes."""

import json
import os
import subprocess
import sys

import keras
import pytest

import tfmeta

QUICK = ["--iterations=40", "--steps_per_epoch=20", "--eval_episodes=50", "--meta_batch_size=5"]


def tfmeta_command(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "tfmeta.cli.main", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    result = tfmeta_command("train", *QUICK, f"--output_dir={output_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir, result


def test_train_writes_a_run_directory_that_explains_itself(trained_run):
    output_dir, result = trained_run
    for name in ("learner.keras", "metrics.json", "history.csv", "adaptation.png", "learning_curve.png"):
        assert (output_dir / name).is_file(), name
    assert any((output_dir / "logs").rglob("events.out.tfevents.*"))
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["iterations_done"] == 40
    assert metrics["options"]["meta_batch_size"] == 5
    evaluation = metrics["eval"]["query_loss_after_adaptation"]
    assert evaluation["tasks"] == 50 and evaluation["mean"] > 0 and evaluation["ci95"] > 0
    assert "held-out query MSE after 10 step(s)" in result.stdout


def test_saved_learner_loads_as_maml(trained_run):
    output_dir, _ = trained_run
    learner = keras.saving.load_model(output_dir / "learner.keras")
    assert isinstance(learner, tfmeta.MAML) and learner.eval_inner_steps == 10


def test_rerunning_a_finished_run_continues_instead_of_starting_over(trained_run):
    output_dir, _ = trained_run
    result = tfmeta_command("train", *QUICK, f"--output_dir={output_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((output_dir / "metrics.json").read_text())["iterations_done"] == 40


def test_evaluate_reloads_the_saved_learner(trained_run):
    output_dir, _ = trained_run
    result = tfmeta_command("evaluate", "--eval_episodes=25", f"--output_dir={output_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((output_dir / "metrics.json").read_text())["eval"]["query_loss_after_adaptation"]["tasks"] == 25


@pytest.mark.parametrize(
    "args, message",
    [
        (["trian"], "expected one command of ['evaluate', 'export', 'train']; received: trian"),
        ([], "expected one command"),
        (["train", "--algorithm=foo"], "--algorithm=foo: value should be one of"),
        (["train", "--shots=0"], "--shots must be >= 1; received --shots=0"),
        (["train", "--inner_steps=-1"], "--inner_steps must be >= 0"),
        (["train", "--inner_learning_rate=-0.5"], "--inner_learning_rate must be a finite number >= 0"),
        (["train", "--iterations=abc"], "flag --iterations=abc"),
        (["evaluate", "--output_dir=/nonexistent/run"], "no trained learner at /nonexistent/run/learner.keras"),
    ],
)
def test_user_errors_exit_2_with_one_message_and_no_traceback(args, message):
    result = tfmeta_command(*args, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("tfmeta: error:") == 1
