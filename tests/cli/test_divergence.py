"""The non-finite loss policy: stop, say so (exit 3, metrics.json), never save NaN weights."""

import json

import numpy as np
import tensorflow as tf


def test_a_nan_loss_stops_training_with_exit_3_and_keeps_only_finite_checkpoints(
    run_tfmeta, tmp_path
):
    # Adam steps of 1e15 make the weights overflow within two meta-updates.
    args = [
        "--meta_learning_rate=1e15",
        "--iterations=8",
        "--steps_per_epoch=1",
        "--meta_batch_size=2",
        "--eval_episodes=5",
        f"--output_dir={tmp_path}",
    ]
    result = run_tfmeta("train", *args)
    assert result.returncode == 3, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "training diverged: the training loss became nan at step" in lines[0]
    assert "Lower --meta_learning_rate or --inner_learning_rate" in lines[0]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["error"] in lines[0]
    assert metrics["last_checkpoint"] < metrics["iterations_done"]
    assert not (tmp_path / "learner.keras").exists()
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating:
            assert np.isfinite(reader.get_tensor(name)).all(), name

    exported = run_tfmeta("export", f"--output_dir={tmp_path}")
    assert exported.returncode == 2 and "no trained learner" in exported.stderr
