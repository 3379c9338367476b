"""`tfmeta --help`: tfmeta's flags only, exit 0, answered without loading TensorFlow."""

import subprocess
import sys
import time

import pytest
from absl import flags

from tfmeta.cli import options


def test_help_is_quick_short_complete_and_exits_0(tfmeta_command):
    start = time.monotonic()
    result = tfmeta_command("--help", timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("usage: tfmeta {train,evaluate,export}")
    assert 40 <= len(lines) <= 100 and max(map(len, lines)) <= 100
    for flag in flags.FLAGS.get_flags_for_module(options):
        assert f"--{flag.name}" in result.stdout, flag.name
    for foreign in ("--tpu", "--xla", "--test_srcdir", "--only_check_args", "--pdb", "--log_dir"):
        assert foreign not in result.stdout, foreign
    assert elapsed < 20, f"--help took {elapsed:.1f} s"  # no TensorFlow import (that takes ~7 s)


def test_help_does_not_load_tensorflow(command_env):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tfmeta.cli.main", "--help"],
        capture_output=True, text=True, timeout=60, env=command_env,
    )
    assert result.returncode == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "tfmeta.cli.options" in imported
    assert not [name for name in imported if name.startswith(("tensorflow", "keras"))]


@pytest.mark.parametrize(
    "args", [["train", "--help"], ["-h"], ["--helpfull"], ["help"], ["evaluate", "-helpshort"]]
)
def test_every_way_of_asking_prints_the_same_help(run_tfmeta, args):
    reference = run_tfmeta("--help")
    result = run_tfmeta(*args)
    assert result.returncode == 0 and result.stdout == reference.stdout
