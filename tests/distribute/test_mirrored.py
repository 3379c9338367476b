"""MirroredStrategy on two logical CPUs: one meta-step equals the single-device step."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).with_name("mirrored_step.py")


@pytest.mark.parametrize(
    "algorithm",
    # A fresh process each (about 20 s): the others run with `pytest -m slow`.
    ["maml",
     *(pytest.param(a, marks=pytest.mark.slow) for a in ("protonet", "r2d2", "relation", "cnp"))],
)
def test_one_mirrored_meta_step_equals_the_single_device_step(algorithm):
    # Logical devices must be configured before TensorFlow starts: run in a fresh process.
    result = subprocess.run(
        [sys.executable, str(SCRIPT), algorithm],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["replicas"] == 2
    assert figures["max_update"] > 1e-3, "the meta-step must move the weights"
    assert figures["max_abs_diff"] < 1e-5, figures
