"""Where `tfmeta train` may write: a new directory, an empty one, or a tfmeta run.

`train` replaces files with fixed names (`README.md`, `options.json`,
`history.csv`, ...), so writing into a directory that holds a user's own
files would destroy them. A run is recognised by the marker file `MARKER`,
which `train` writes first into every directory it creates or adopts; a
directory written before the marker existed is recognised by its
`options.json`. Nothing here imports TensorFlow: the check runs before
anything is read or built.
"""

from __future__ import annotations

import os
import pathlib

from tfmeta.cli import options as options_lib

MARKER = ".tfmeta_run"
_MARKER_TEXT = "This directory is a tfmeta run: `tfmeta train` may write into it.\n"
# What `tfmeta.rl.training` writes at every epoch end of a meta-RL run (its CLOCK_FILE).
META_RL_CLOCK = "clock.json"


def is_run(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds the marker, or the options of a run written before it."""
    directory = pathlib.Path(directory)
    if (directory / MARKER).is_file():
        return True
    try:
        return options_lib.load_run_options(directory) is not None
    except ValueError:
        return False


def is_meta_rl_run(directory: str | os.PathLike) -> bool:
    """Whether `directory` is a meta-RL run (`tfmeta train --env=...`) past its first epoch."""
    directory = pathlib.Path(directory)
    return (directory / MARKER).is_file() and (directory / META_RL_CLOCK).is_file()


def check_train_directory(output_dir: str) -> None:
    """Raises a ValueError unless `train` may write into `output_dir`.

    Allowed: a path that does not exist yet (it is created), an empty
    directory, or a tfmeta run. The empty string is never a directory.
    """
    if not output_dir.strip():
        raise ValueError(
            "--output_dir is empty (an unset shell variable?); pass the run directory's path"
        )
    path = pathlib.Path(output_dir)
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"--output_dir={output_dir} is a file; pass a directory")
    if any(path.iterdir()) and not is_run(path):
        names = sorted(entry.name for entry in path.iterdir())
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise ValueError(
            f"--output_dir={output_dir} is a directory that is not a tfmeta run (it holds "
            f"{shown} and no {MARKER} marker), and `tfmeta train` would replace files there; "
            "pass a new or empty directory"
        )


def check_writable(path: str, flag: str) -> None:
    """Raises a ValueError unless `path`, or the nearest folder above it that exists, is writable.

    A command checks this before it trains or evaluates, so a read-only
    destination fails at once instead of after the work.
    """
    existing = pathlib.Path(os.path.abspath(path))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"--{flag}={path}: cannot write in {existing} (read-only or not permitted); make it "
            f"writable, or pass another --{flag}"
        )


def mark(directory: str | os.PathLike) -> None:
    """Creates `directory` (and its parents) if needed and marks it as a tfmeta run."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / MARKER
    if not marker.is_file():
        marker.write_text(_MARKER_TEXT)
