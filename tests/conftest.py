"""Fixtures shared by every test folder: the real Omniglot, extracted and decoded once per run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import filelock
import pytest

# Each pytest-xdist worker (one per core) runs TensorFlow on one thread: TensorFlow's
# default pools, one thread per core in every worker, oversubscribe the CPU. Set before
# TensorFlow is first imported. On the 2-core AMD EPYC, `pytest tests/learners` ran in 225
# and 242 s so, against 304 and 277 s with the default pools (runs alternated).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfmeta.data  # noqa: E402
from tfmeta.data.pipeline_options import without_autotune_thread  # noqa: E402

_iterate = tf.data.Dataset.__iter__


def _iterate_without_autotuning(dataset: tf.data.Dataset):
    """`iter(dataset)` with tf.data's autotuning off, as tfmeta's own pipelines run.

    Destroying an iterator waits for its autotuning thread: garbage collections that
    freed the forgotten iterators of Keras's array datasets and of pipelines made in
    tests stalled a worker 19-49 s, once or twice per run; with autotuning off, none
    (`tfmeta/data/pipeline_options.py`).
    """
    if dataset.options().autotune.enabled is False:
        return _iterate(dataset)
    return _iterate(without_autotune_thread(dataset))


tf.data.Dataset.__iter__ = _iterate_without_autotuning

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared data folder sits beside the repository (or inside a copied checkout).
OMNIGLOT_TARBALLS = [
    REPO_ROOT.parent / "shared/data/omniglot/omniglot.tar.gz",
    REPO_ROOT / "shared/data/omniglot/omniglot.tar.gz",
]


@pytest.fixture(scope="session")
def omniglot_tarball() -> Path:
    for path in OMNIGLOT_TARBALLS:
        if path.is_file():
            return path
    pytest.skip(
        "Real Omniglot not found: expected ../shared/data/omniglot/omniglot.tar.gz beside the "
        f"repository (looked at {[str(p) for p in OMNIGLOT_TARBALLS]})"
    )


# One cache folder for the whole run, shared by the pytest-xdist workers: the first
# worker that needs Omniglot extracts and decodes it (about 40 s), the others wait on
# a lock and read the result. The main process makes it before the workers start
# (they inherit the variable) and removes it after they end.
_RUN_CACHE_VARIABLE = "TFMETA_TEST_RUN_CACHE_DIR"


def pytest_configure(config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    # A RAM disk when there is one: the cache receives Omniglot's 32,460 small files,
    # and creating and deleting those on some virtual disks takes tens of seconds.
    ram_disk = Path("/dev/shm")
    parent = ram_disk if ram_disk.is_dir() and os.access(ram_disk, os.W_OK) else None
    os.environ[_RUN_CACHE_VARIABLE] = tempfile.mkdtemp(prefix="tfmeta-test-cache-", dir=parent)


def pytest_unconfigure(config) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER") and _RUN_CACHE_VARIABLE in os.environ:
        shutil.rmtree(os.environ.pop(_RUN_CACHE_VARIABLE), ignore_errors=True)


@pytest.fixture(scope="session")
def data_cache_dir() -> Path:
    """The tfmeta cache folder of this test run (never the user's own cache)."""
    return Path(os.environ[_RUN_CACHE_VARIABLE])


def _omniglot_lock(cache_dir: Path) -> filelock.FileLock:
    """Held while a worker extracts or decodes Omniglot, so that one worker does it."""
    return filelock.FileLock(cache_dir / "omniglot.lock")


@pytest.fixture(scope="session")
def omniglot_dir(omniglot_tarball, data_cache_dir) -> Path:
    """The real Omniglot, extracted once per run: a tfds.ImageFolder root."""
    with _omniglot_lock(data_cache_dir):
        return tfmeta.data.extract_archive(omniglot_tarball, data_cache_dir) / "omniglot"


@pytest.fixture(scope="session")
def omniglot_sets(omniglot_dir, data_cache_dir) -> dict[str, tfmeta.data.ClassImages]:
    """The two official sets, decoded at 28x28 once per run (and cached on disk)."""
    with _omniglot_lock(data_cache_dir):
        return tfmeta.data.omniglot_class_images(omniglot_dir, cache_dir=data_cache_dir)


@pytest.fixture(scope="session")
def omniglot_vinyals(omniglot_sets, omniglot_dir, data_cache_dir):
    with _omniglot_lock(data_cache_dir):
        return tfmeta.data.omniglot(omniglot_dir, "vinyals", cache_dir=data_cache_dir)


@pytest.fixture(scope="session")
def omniglot_lake(omniglot_sets, omniglot_dir, data_cache_dir):
    with _omniglot_lock(data_cache_dir):
        return tfmeta.data.omniglot(omniglot_dir, "lake", cache_dir=data_cache_dir)


@pytest.fixture
def float64():
    """float64 inputs and layers for this test only: Keras caches its global dtype policy at
    first use, so restoring `floatx` alone would leave every later test's layers in float64."""
    previous_floatx, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(previous_floatx)
    keras.config.set_dtype_policy(previous_policy)
