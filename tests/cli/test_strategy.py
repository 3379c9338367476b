"""`tfmeta train --strategy=...`: tf.distribute from the command line."""

import json
import os
import socket
import subprocess
import sys

import pytest

QUICK = ["--iterations=20", "--steps_per_epoch=10", "--eval_episodes=25", "--meta_batch_size=4"]


def tfmeta(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tfmeta.cli.main", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})),
    )


def test_multi_worker_without_a_cluster_is_a_user_error(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "tfmeta.cli.main", "train", "--strategy=multi_worker",
         f"--output_dir={tmp_path / 'run'}", *QUICK],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "reads the cluster from the TF_CONFIG environment variable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_two_workers_train_and_only_the_chief_writes_the_run(tmp_path):
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("localhost", 0))
    workers = [f"localhost:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    processes = [
        tfmeta("train", "--strategy=multi_worker", f"--output_dir={tmp_path / f'run{index}'}",
               *QUICK,
               env={"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                             "task": {"type": "worker", "index": index}})})
        for index in range(2)
    ]
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stderr[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    metrics = json.loads((tmp_path / "run0" / "metrics.json").read_text())
    assert metrics["iterations_done"] == 20
    assert (tmp_path / "run0" / "learner.keras").is_file()
    assert not (tmp_path / "run1").exists(), "a worker that is not the chief writes nothing"
