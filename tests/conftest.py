"""Fixtures shared by every test folder: the real Omniglot, extracted and decoded once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

# Each pytest-xdist worker (one per core) runs TensorFlow on one thread: TensorFlow's
# default pools, one thread per core in every worker, oversubscribe the CPU. Set before
# TensorFlow is first imported. On the 2-core AMD EPYC, `pytest tests/learners` ran in 225
# and 242 s so, against 304 and 277 s with the default pools (runs alternated).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import tfmeta.data  # noqa: E402

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


@pytest.fixture(scope="session")
def data_cache_dir(tmp_path_factory) -> Iterator[Path]:
    """A tfmeta cache folder for this session (never the user's own cache).

    It goes to a RAM disk when there is one, and is removed at the end of the
    session: it receives Omniglot's 32,460 small files, and creating and
    deleting those on some virtual disks takes tens of seconds.
    """
    ram_disk = Path("/dev/shm")
    if ram_disk.is_dir() and os.access(ram_disk, os.W_OK):
        with tempfile.TemporaryDirectory(dir=ram_disk, prefix="tfmeta-test-cache-") as tmp:
            yield Path(tmp)
    else:
        tmp = tmp_path_factory.mktemp("tfmeta_cache")
        yield tmp
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def omniglot_dir(omniglot_tarball, data_cache_dir) -> Path:
    """The real Omniglot, extracted once per session: a tfds.ImageFolder root."""
    return tfmeta.data.extract_archive(omniglot_tarball, data_cache_dir) / "omniglot"


@pytest.fixture(scope="session")
def omniglot_sets(omniglot_dir, data_cache_dir) -> dict[str, tfmeta.data.ClassImages]:
    """The two official sets, decoded at 28x28 once per session (and cached on disk)."""
    return tfmeta.data.omniglot_class_images(omniglot_dir, cache_dir=data_cache_dir)


@pytest.fixture(scope="session")
def omniglot_vinyals(omniglot_sets, omniglot_dir, data_cache_dir):
    return tfmeta.data.omniglot(omniglot_dir, "vinyals", cache_dir=data_cache_dir)


@pytest.fixture(scope="session")
def omniglot_lake(omniglot_sets, omniglot_dir, data_cache_dir):
    return tfmeta.data.omniglot(omniglot_dir, "lake", cache_dir=data_cache_dir)
