"""Extracting a dataset archive (`.tar.gz`) into a cache folder, once and atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import uuid
from pathlib import Path

from tfmeta.data.cache import default_cache_dir

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def extract_archive(archive: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Extracts a tar archive into `cache_dir`, unless that was done before.

    The destination is `<cache_dir>/archives/<archive name>-<sha256 prefix>`, so
    a changed archive is extracted afresh. Extraction goes to a temporary
    folder beside it, renamed into place when complete: a crash never leaves a
    half-extracted destination, and concurrent callers both end up with one
    complete copy. Members that would land outside the destination (absolute
    paths, `..`, links out) are refused (tarfile's `"data"` filter).

    Args:
        archive: a `.tar.gz`, `.tgz` or `.tar` file, for example Omniglot's
            `../shared/data/omniglot/omniglot.tar.gz` (relative to the repo).
        cache_dir: parent folder; defaults to `default_cache_dir()`.

    Returns:
        The destination folder, holding the archive's top-level entries
        (for Omniglot: `omniglot/train`, `omniglot/test`).

    Raises:
        FileNotFoundError: if `archive` does not exist.
        ValueError: if `archive` is not a tar archive.

    Example:

    >>> root = tfmeta.data.extract_archive("../shared/data/omniglot/omniglot.tar.gz")
    >>> sorted(p.name for p in (root / "omniglot").iterdir())
    ['test', 'train']
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(
            f"Expected a tar archive file. Received: {str(archive)!r}, which does not exist"
        )
    if not archive.name.endswith(_ARCHIVE_SUFFIXES):
        raise ValueError(
            f"Expected a tar archive ({', '.join(_ARCHIVE_SUFFIXES)}). Received: {str(archive)!r}"
        )
    parent = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    parent = parent / "archives"
    stem = archive.name
    for suffix in _ARCHIVE_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    destination = parent / f"{stem}-{_sha256(archive)[:16]}"
    if destination.is_dir():
        return destination

    if not tarfile.is_tarfile(archive):
        raise ValueError(f"Expected a tar archive. Received: {str(archive)!r}, which is not one")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{destination.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()  # Unlike tempfile.mkdtemp, keeps the umask's permissions.
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # Python without extraction filters: check member paths ourselves.
                root = tmp.resolve()
                for member in tar.getmembers():
                    target = (root / member.name).resolve()
                    outside = target != root and root not in target.parents
                    if outside or member.issym() or member.islnk():
                        raise ValueError(
                            f"Refusing to extract {member.name!r} outside {str(tmp)!r}"
                        )
                tar.extractall(tmp)
        try:
            os.rename(tmp, destination)
        except OSError:
            if not destination.is_dir():  # Not a lost race with another extractor.
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return destination


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
