"""Extracting a dataset archive (`.tar.gz`) into a cache folder, once and atomically."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import tarfile
import zlib
from pathlib import Path

from tfmeta.data.cache import default_cache_dir
from tfmeta.data.temporary_files import remove_stale_temporaries, temporary_path

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # Pythons with extraction filters


def extract_archive(archive: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Extracts a tar archive into `cache_dir`, unless that was done before.

    The destination is `<cache_dir>/archives/<archive name>-<sha256 prefix>`, so
    a changed archive is extracted afresh. Extraction goes to a temporary
    folder beside it, renamed into place when complete: a crash never leaves a
    half-extracted destination, and concurrent callers both end up with one
    complete copy; temporary folders of extractions killed earlier on this
    machine are removed first. Members that would land outside the
    destination (absolute paths, `..`, links out, devices) are refused
    (tarfile's `"data"` filter). The archive must read to its end: tarfile
    alone stops silently at a damaged member header, which would cache a
    partial copy.

    Args:
        archive: a `.tar.gz`, `.tgz` or `.tar` file, for example Omniglot's
            `../shared/data/omniglot/omniglot.tar.gz` (relative to the repo).
        cache_dir: parent folder; defaults to `default_cache_dir()`.

    Returns:
        The destination folder, holding the archive's top-level entries
        (for Omniglot: `omniglot/train`, `omniglot/test`).

    Raises:
        FileNotFoundError: if `archive` does not exist.
        ValueError: if `archive` is not a tar archive, is truncated or
            damaged, or holds a member the filter refuses (nothing is kept).

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
        raise ValueError(
            f"Expected a tar archive. Received: {str(archive)!r}, which cannot be read as one "
            "(damaged, truncated or another format); copy or download it again"
        )
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent)
    tmp = temporary_path(destination)
    tmp.mkdir()  # Unlike tempfile.mkdtemp, keeps the umask's permissions.
    try:
        try:
            with tarfile.open(archive) as tar:
                _extract_all(tar, tmp)
                check_read_to_end(tar)
        except _FILTER_ERROR as error:
            raise ValueError(
                f"Refusing to extract {str(archive)!r}: {error}. tfmeta extracts only files and "
                "folders inside the destination; repack the archive without that member"
            ) from error
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as error:
            raise ValueError(
                f"Expected a complete tar archive. Received: {str(archive)!r}, which is truncated "
                f"or damaged ({error}); copy or download it again"
            ) from error
        try:
            os.rename(tmp, destination)
        except OSError:
            if not destination.is_dir():  # Not a lost race with another extractor.
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return destination


def _extract_all(tar: tarfile.TarFile, destination: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data")
        return
    # Python without extraction filters: check member paths ourselves.
    root = destination.resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        outside = target != root and root not in target.parents
        if outside or not (member.isfile() or member.isdir()):
            raise ValueError(f"Refusing to extract {member.name!r} outside {str(destination)!r}")
    tar.extractall(destination)


def check_read_to_end(tar: tarfile.TarFile) -> None:
    """Raises a `tarfile.ReadError` unless only end-of-archive zeros follow the last member.

    tarfile stops listing members silently at a damaged member header; this
    tells such an archive from a complete one. Reading to the end also makes
    gzip, bz2 and xz check their own checksums.
    """
    stream = tar.fileobj
    stream.seek(tar.offset)
    for block in iter(lambda: stream.read(1 << 20), b""):
        if block.strip(b"\0"):
            last = tar.members[-1].name if tar.members else "the start"
            raise tarfile.ReadError(f"unreadable data after {last!r}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
