"""Running `tfmeta` as a user does (a subprocess) and in-process (fast), and toy data for it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from cli_testing import TOY_CLASSES, TOY_IMAGES_PER_CLASS

import tfmeta.data.tfds_images
from tfmeta.cli import main


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(autouse=True)
def tfds_downloads_reachable(monkeypatch):
    """TFDS's download hosts count as reachable: these tests mock TFDS (`tfds.testing.mock_data`)
    on machines with or without a network; the offline tests make them unreachable themselves."""
    monkeypatch.setattr(tfmeta.data.tfds_images, "unreachable_hosts", lambda urls: {})


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """tfmeta's cache for this session (never the user's)."""
    return tmp_path_factory.mktemp("tfmeta_cache")


@pytest.fixture(scope="session")
def command_env(cache_dir) -> dict[str, str]:
    """The environment of `tfmeta` subprocesses."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFMETA_CACHE_DIR=str(cache_dir))


@pytest.fixture(scope="session")
def tfmeta_command(command_env, tmp_path_factory):
    """Runs `python -m tfmeta.cli.main ARGS` in a subprocess; returns its `CompletedProcess`.

    It runs in an empty folder, where default run directories cannot meet old runs.
    """
    cwd = tmp_path_factory.mktemp("cwd")

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tfmeta.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=command_env,
            cwd=cwd,
        )

    return run


@pytest.fixture
def run_tfmeta(capsys, monkeypatch, cache_dir, tmp_path_factory):
    """Runs `tfmeta ARGS` in this process (no TensorFlow import per call); returns a `Result`.

    It runs in an empty folder, where default run directories cannot meet old runs.
    """
    monkeypatch.setenv("TFMETA_CACHE_DIR", str(cache_dir))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))

    def run(*args: str) -> Result:
        flags.FLAGS.unparse_flags()
        capsys.readouterr()
        try:
            main.run(["tfmeta", *args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        finally:
            flags.FLAGS.unparse_flags()
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """A toy ImageFolder `<root>/{train,test}/<class>/<n>.png`: class `c` a bright row on noise."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, classes in TOY_CLASSES.items():
        for label in range(classes):
            folder = root / split / f"{split}_class{label}"
            folder.mkdir(parents=True)
            for index in range(TOY_IMAGES_PER_CLASS):
                image = (rng.random((8, 8, 1)) * 60).astype(np.uint8)
                image[label % 8] = 255
                tf.io.write_file(str(folder / f"{index}.png"), tf.io.encode_png(image))
    return root
