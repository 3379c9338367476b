"""Temporary names for files and folders written then renamed into place, and their cleanup.

The cache writes everything under a temporary name beside its final place
and renames it when complete, so a kill never leaves a half-written entry;
it can leave the temporary itself, which the next writer removes. A name
records the host and the process that wrote it, so only temporaries of
processes that are gone are removed, never those of a live writer.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Callable

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
# `.<name>.<host>_<pid>.<32 hex>.tmp[<suffix>]`; names written before the host was added lack
# `<host>_`.
_TEMPORARY = re.compile(
    r"\.(?P<name>.+)\.(?:(?P<host>[A-Za-z0-9-]*)_)?(?P<pid>\d+)\.[0-9a-f]{32}\.tmp(\.\w+)?"
)


def temporary_path(final: str | os.PathLike, suffix: str = "") -> Path:
    """A unique temporary name beside `final`, recognised by `remove_stale_temporaries`.

    Args:
        final: the path the temporary is renamed to when complete.
        suffix: appended, for writers that insist on one (Keras: `".keras"`).
    """
    final = Path(final)
    return final.parent / f".{final.name}.{_HOST}_{os.getpid()}.{uuid.uuid4().hex}.tmp{suffix}"


def write_through_temporary(
    path: str | os.PathLike, write: Callable[[Path], object], suffix: str = ""
) -> None:
    """Calls `write(temporary)` on a temporary beside `path`, then renames it to `path`.

    A failure keeps `path` as it was and removes the temporary; an OSError
    names `path`, not the temporary. A kill can leave the temporary
    (`temporary_path`), which `remove_stale_temporaries` recognises;
    `tfmeta train` removes such leftovers when it starts.

    Args:
        path: the file to write.
        write: writes the whole file to the path it is given (e.g. `model.save`).
        suffix: the temporary's suffix, for writers that insist on one
            (Keras: `".keras"`, `".weights.h5"`).
    """
    temporary = temporary_path(path, suffix)
    try:
        try:
            write(temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:  # name the file, not its temporary
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def write_atomically(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename; a failure keeps `path`."""
    write_through_temporary(path, lambda temporary: temporary.write_text(text))


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Removes the temporaries (`temporary_path`) in `directory` of writers that were killed.

    Only temporaries written on this machine by processes no longer running
    are removed; those of live writers, and of other machines sharing the
    folder, are left alone. Does nothing where processes cannot be probed
    (not POSIX).
    """
    directory = Path(directory)
    if os.name != "posix" or not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or match["host"] not in (None, _HOST):
            continue
        if _is_running(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
