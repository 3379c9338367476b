"""TF Serving's versioned layout, written so that a polling server never sees a partial version.

TF Serving watches a base directory and loads the subdirectories whose
names are all digits (`<base>/1/`, `<base>/2/`, ...). Each version is written
into a hidden, non-numeric directory inside the base (`.tfmeta-partial-...`),
synced, and renamed into place in one atomic `rename`. A crash while writing
leaves only that hidden directory behind, which a server ignores (and which
can be deleted).
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Callable

PARTIAL_PREFIX = ".tfmeta-partial-"


def _check_version(version) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"Expected `version` to be an integer >= 1 (TF Serving's version directories). "
            f"Received: version={version!r}"
        )
    return version


def versions(base_dir: str | os.PathLike) -> list[int]:
    """The versions a server would consider in `base_dir` (all-digit subdirectory names)."""
    base_dir = os.fspath(base_dir)
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name) for name in os.listdir(base_dir)
        if name.isdigit() and os.path.isdir(os.path.join(base_dir, name))
    )


def next_version(base_dir: str | os.PathLike) -> int:
    """One more than the highest existing version, or 1."""
    existing = versions(base_dir)
    return existing[-1] + 1 if existing else 1


def _sync_tree(directory: str) -> None:
    """fsyncs every file and directory under `directory`, so the rename publishes complete data."""
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as file:
                os.fsync(file.fileno())
        _sync_directory(root)


def _sync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_version(
    base_dir: str | os.PathLike,
    write: Callable[[str], None],
    version: int | None = None,
    overwrite: bool = False,
) -> str:
    """Writes one version of a servable, atomically.

    Args:
        base_dir: the model base directory a server watches (created if needed).
        write: `write(directory)` fills a new, empty directory with the
            version's files.
        version: the version number (>= 1); default: `next_version(base_dir)`.
        overwrite: replace an existing version. The old version is moved
            aside, the new one renamed in, then the old one deleted: a server
            may see the version missing for that instant, never half-written.

    Returns:
        The version directory, `<base_dir>/<version>`.

    Raises:
        FileExistsError: if the version exists and `overwrite` is False (also
            when another writer published it first).
    """
    base_dir = os.fspath(base_dir)
    version = next_version(base_dir) if version is None else _check_version(version)
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(
            f"Expected a new version directory. Received: version {version}, which already "
            f"exists at '{final}'; pass overwrite=True to replace it, or version=None for "
            "the next free version."
        )
    os.makedirs(base_dir, exist_ok=True)
    partial = os.path.join(base_dir, f"{PARTIAL_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    os.mkdir(partial)
    try:
        write(partial)
        _sync_tree(partial)
        if overwrite and os.path.exists(final):
            retired = f"{partial}-retired"
            os.rename(final, retired)
            os.rename(partial, final)
            shutil.rmtree(retired)
        else:
            try:
                os.rename(partial, final)
            except OSError as error:
                raise FileExistsError(
                    f"Expected a new version directory. Received: version {version} was "
                    f"published at '{final}' by another writer while this one was writing."
                ) from error
        _sync_directory(base_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final
