"""Which processes get TensorFlow's logs silenced: the `tfmeta` command only, unless asked."""

import os
import subprocess
import sys

import pytest

from tfmeta.cli import tensorflow_logs


def test_the_command_is_the_console_script_or_its_module():
    assert tensorflow_logs.is_command(["/venv/bin/tfmeta", "train"], [])
    assert tensorflow_logs.is_command(["-m"], ["python", "-m", "tfmeta.cli.main", "train"])
    assert not tensorflow_logs.is_command(["-m"], ["python", "-m", "pytest"])
    assert not tensorflow_logs.is_command(["train.py"], ["python", "train.py", "-m"])


def test_verbosity_on_the_command_line_asks_for_the_logs():
    assert tensorflow_logs.asks_for_logs(["tfmeta", "train", "--verbosity=1"])
    assert tensorflow_logs.asks_for_logs(["tfmeta", "train", "-v", "0"])
    assert not tensorflow_logs.asks_for_logs(["tfmeta", "train", "--variant=3"])


def test_captured_stderr_is_replayed_when_the_body_fails(capfd):
    with pytest.raises(RuntimeError):
        with tensorflow_logs.stderr_captured():
            os.write(2, b"why the import failed\n")
            raise RuntimeError("import failed")
    with tensorflow_logs.stderr_captured():
        os.write(2, b"start-up noise\n")
    assert capfd.readouterr().err == "why the import failed\n"


@pytest.mark.slow
def test_verbosity_brings_tensorflows_start_up_lines_back(command_env):
    env = {key: value for key, value in command_env.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "tfmeta.cli.main", "train", "--shots=0"]
    quiet = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    loud = subprocess.run([*command, "--verbosity=0"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert quiet.stderr.splitlines() == ["tfmeta: error: --shots must be >= 1; received --shots=0"]
    assert len(loud.stderr.splitlines()) > 1 and loud.stderr.endswith(quiet.stderr)
