"""The examples run as a user runs them, on tiny data: own images, own regression, serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY_IMAGES = ["--image_size=8", "--filters=4", "--ways=3", "--iterations=2"]


@pytest.fixture(scope="module")
def toy_images(tmp_path_factory) -> Path:
    """An ImageFolder root: 8 training and 6 test classes of 6 8x8 PNGs (a bright row each)."""
    root = tmp_path_factory.mktemp("toy_images")
    rng = np.random.default_rng(0)
    for split, classes in (("train", 8), ("test", 6)):
        for label in range(classes):
            folder = root / split / f"{split}{label}"
            folder.mkdir(parents=True)
            for index in range(6):
                image = (rng.random((8, 8, 1)) * 60).astype(np.uint8)
                image[label] = 255
                tf.io.write_file(str(folder / f"{index}.png"), tf.io.encode_png(image))
    return root


def run_example(name: str, *args: str, cwd: Path) -> str:
    """Runs `examples/<name>` in `cwd`; returns its stdout (the test fails on a non-zero exit)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFMETA_CACHE_DIR=str(cwd / "cache"))
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                            text=True, timeout=900, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_own_images_from_a_folder(toy_images, tmp_path):
    out = run_example("own_images.py", f"--images={toy_images}", *TINY_IMAGES, "--queries=2",
                      "--test_episodes=5", cwd=tmp_path)
    assert "meta-training on 8 classes, evaluating on 6 others" in out
    assert "3-way 1-shot accuracy on unseen classes: " in out and "(5 episodes)" in out


@pytest.mark.slow  # the folder path above runs by default; README tests cover from_arrays
def test_own_images_from_numpy_floats_in_0_255(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", images=rng.random([120, 8, 8]) * 255,
             labels=np.arange(120) % 12)
    out = run_example("own_images.py", "--npz=data.npz", f"--scale={1 / 255}",
                      "--test_classes=4", *TINY_IMAGES, "--queries=2", "--test_episodes=5",
                      cwd=tmp_path)
    assert "meta-training on 8 classes, evaluating on 4 others" in out


def test_own_regression_family(tmp_path):
    out = run_example("own_regression.py", "--iterations=2", "--meta_batch_size=2",
                      "--test_episodes=25", cwd=tmp_path)
    assert "held-out query MSE: " in out and "after 5 steps (25 tasks)" in out


@pytest.mark.slow
def test_serving_round_trip(toy_images, tmp_path):
    out = run_example("serving_round_trip.py", f"--images={toy_images}", *TINY_IMAGES,
                      "--export_dir=models/toy", cwd=tmp_path)
    assert "served predictions equal the learner's" in out
    assert (tmp_path / "models" / "toy" / "1" / "saved_model.pb").is_file()
    request = json.loads((tmp_path / "request.json").read_text())["inputs"]
    assert len(request["support_images"]) == 3 and request["support_y"] == [0, 1, 2]
