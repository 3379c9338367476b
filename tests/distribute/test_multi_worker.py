"""MultiWorkerMirroredStrategy: two worker processes on localhost train in lockstep."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).with_name("multi_worker_train.py")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # two worker processes; MirroredStrategy runs by default
def test_two_workers_end_with_identical_weights_and_only_the_chief_writes(tmp_path):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, str(SCRIPT), str(tmp_path / f"run{index}"),
             str(tmp_path / f"weights{index}.npz")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        ))
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-3000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert [o["chief"] for o in outputs] == [True, False]
    assert all(o["replicas"] == 2 for o in outputs)
    chief, worker = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], worker[key])
    assert (tmp_path / "run0" / "learner.keras").is_file()
    assert not (tmp_path / "run1").exists(), "only the chief writes the run directory"
