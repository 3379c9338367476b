"""`tfmeta train` / `evaluate` / `export` as a user runs them: a subprocess, files, exit codes."""

import json
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta

# 200 meta-updates in 4 epochs (a checkpoint, a validation and, for the sinusoid, a
# TensorBoard figure each): long enough to be killed mid-run. A progress line every second:
# on an idle machine the whole run can take less than the default 10 s between lines.
QUICK = [
    "--iterations=200",
    "--steps_per_epoch=50",
    "--eval_episodes=50",
    "--meta_batch_size=5",
    "--val_episodes=5",
    "--log_every=50",
    "--progress_seconds=1",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tfmeta_command):
    """An uninterrupted sinusoid MAML run: `(output_dir, process result, its metrics.json)`."""
    output_dir = tmp_path_factory.mktemp("run")
    result = tfmeta_command("train", *QUICK, f"--output_dir={output_dir}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir, result, json.loads((output_dir / "metrics.json").read_text())


def test_train_writes_a_run_directory_that_explains_itself(trained_run):
    output_dir, result, metrics = trained_run
    for name in (
        "README.md",
        "options.json",
        "learner.keras",
        "metrics.json",
        "history.csv",
        "adaptation.png",
        "learning_curve.png",
        "checkpoints/checkpoint",
    ):
        assert (output_dir / name).is_file(), name
    assert tf.train.latest_checkpoint(str(output_dir / "checkpoints")).endswith("ckpt-200")
    assert any((output_dir / "logs").rglob("events.out.tfevents.*"))
    assert metrics["status"] == "completed" and metrics["iterations_done"] == 200
    assert metrics["resumed_from"] is None
    assert metrics["options"]["meta_batch_size"] == 5
    evaluation = metrics["eval"]["query_loss_after_adaptation"]
    assert evaluation["tasks"] == 50 and evaluation["mean"] > 0 and evaluation["ci95"] > 0
    assert len((output_dir / "history.csv").read_text().splitlines()) == 1 + 4
    assert "starting a new run" in result.stdout
    assert "held-out query MSE after 10 step(s)" in result.stdout


def test_saved_learner_loads_as_maml(trained_run):
    output_dir, _, _ = trained_run
    learner = keras.saving.load_model(output_dir / "learner.keras")
    assert isinstance(learner, tfmeta.MAML) and learner.eval_inner_steps == 10


# Killed and resumed in a subprocess; in-process resume: tests/test_checkpointing.py.
@pytest.mark.slow
def test_killed_run_resumes_and_ends_as_if_never_interrupted(
    trained_run, command_env, tfmeta_command, tmp_path
):
    _, _, reference = trained_run
    output_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "tfmeta.cli.main",
        "train",
        *QUICK,
        f"--output_dir={output_dir}",
    ]
    process = subprocess.Popen(
        command, env=command_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not (output_dir / "checkpoints" / "checkpoint").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(tf.train.latest_checkpoint(str(output_dir / "checkpoints")).rsplit("-", 1)[1])
    assert 0 < killed_at < 200 and not (output_dir / "learner.keras").exists()

    result = tfmeta_command("train", *QUICK, f"--output_dir={output_dir}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {output_dir}/checkpoints/ckpt-{killed_at}" in result.stdout
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["resumed_from"] == killed_at and metrics["iterations_done"] == 200
    # The same seed, data stream, optimizer state and step: bit-identical results.
    assert metrics["eval"] == reference["eval"]
    reference_history = (trained_run[0] / "history.csv").read_text()
    assert (output_dir / "history.csv").read_text() == reference_history


def test_rerunning_a_finished_run_continues_instead_of_starting_over(trained_run, tfmeta_command):
    output_dir, _, reference = trained_run
    result = tfmeta_command("train", *QUICK, f"--output_dir={output_dir}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stdout and "200 of 200 meta-updates done" in result.stdout
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["iterations_done"] == 200 and metrics["eval"] == reference["eval"]


def test_evaluate_writes_its_own_file_and_leaves_the_training_report_alone(
    trained_run, run_tfmeta
):
    output_dir, _, _ = trained_run
    kept = {name: (output_dir / name).read_bytes() for name in ("metrics.json", "adaptation.png")}
    result = run_tfmeta(
        "evaluate", "--eval_episodes=25", "--eval_inner_steps=5", f"--output_dir={output_dir}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    name = "10shot_100queries_5steps_25tasks_seed0"
    metrics = json.loads((output_dir / "evaluations" / f"{name}.json").read_text())
    assert metrics["eval"]["query_loss_after_adaptation"]["tasks"] == 25
    assert metrics["eval"]["inner_steps"] == 5 and metrics["iterations_done"] == 200
    assert (output_dir / "evaluations" / f"{name}_adaptation.png").is_file()
    assert "held-out query MSE after 5 step(s)" in result.stdout
    assert {name: (output_dir / name).read_bytes() for name in kept} == kept


def test_train_shows_progress_and_validates_every_epoch(trained_run):
    output_dir, result, metrics = trained_run
    progress = [line for line in result.stdout.splitlines() if "meta-updates (epoch" in line]
    assert progress, result.stdout[-2000:]
    assert re.fullmatch(
        r"tfmeta: \d+/200 meta-updates \(epoch \d+/4\): loss [\d.e+-]+; [\d.]+ tasks/s, "
        r"ETA \d+(m\d\ds|s)",
        progress[-1],
    )
    assert "tfmeta: epoch 4/4 done: loss " in result.stdout and "val_loss " in result.stdout
    history = np.genfromtxt(output_dir / "history.csv", delimiter=",", names=True)
    assert np.isfinite(history["val_loss"]).all() and len(history) == 4
    # learner.keras is the best validation epoch's, as metrics.json says.
    best = int(np.argmin(history["val_loss"]))
    assert metrics["selected"] == {
        "epoch": best + 1, "val_loss": history["val_loss"][best], "file": "best.keras"
    }
    assert f"learner.keras holds the learner of epoch {best + 1}" in result.stdout
    saved = keras.saving.load_model(output_dir / "learner.keras")
    for name in ("learner.keras", "best.keras"):
        other = keras.saving.load_model(output_dir / name)
        for a, b in zip(saved.weights, other.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_tensorboard_gets_step_scalars_and_images(trained_run):
    output_dir, _, _ = trained_run
    scalars, images = {}, set()
    for path in (output_dir / "logs" / "steps").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    images.add(value.tag)
                else:
                    scalars.setdefault(value.tag, []).append(event.step)
    assert scalars["probe/loss_before_adaptation"] == list(range(50, 201, 50))
    for tag in ("probe/loss_after_adaptation", "tasks_per_second", "train/loss"):
        assert scalars[tag] == list(range(50, 201, 50)), tag
    assert images == {"adaptation"}


def test_export_writes_versions_for_serving_and_a_tflite_file(trained_run, run_tfmeta, tmp_path):
    output_dir, _, _ = trained_run
    base = tmp_path / "serving" / "sinusoid"
    for version in (1, 2):
        result = run_tfmeta("export", f"--output_dir={output_dir}", f"--export_dir={base}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert (base / str(version) / "saved_model.pb").is_file()
    result = run_tfmeta("export", f"--output_dir={output_dir}", "--format=tflite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (output_dir / "export" / f"{output_dir.name}.tflite").stat().st_size > 0


# One real process by default; test_bad_input.py runs these and more cases in-process.
@pytest.mark.parametrize(
    "args, message",
    [
        (["trian"], "expected one command of ['evaluate', 'export', 'train']; received: trian"),
        pytest.param(["train", "--algorithm=foo"], "--algorithm=foo: value should be one of",
                     marks=pytest.mark.slow),
        pytest.param(
            ["evaluate", "--output_dir=/nonexistent/run"],
            "no trained learner at /nonexistent/run/learner.keras",
            marks=pytest.mark.slow,
        ),
        pytest.param(["train", "--dataset=./no/such/images"],
                     "--dataset=./no/such/images: no such directory", marks=pytest.mark.slow),
    ],
)
def test_user_errors_exit_2_with_one_message_and_no_traceback(tfmeta_command, args, message):
    result = tfmeta_command(*args, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("tfmeta: error:") == 1
