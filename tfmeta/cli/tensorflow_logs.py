"""Keeps TensorFlow's C++ log lines off the `tfmeta` command's stderr.

A user fault must read as one `tfmeta: error:` line, but importing
TensorFlow 2.21 writes 6-9 lines to stderr (oneDNN, CUDA stubs, CPU
features) through absl's C++ logging before `TF_CPP_MIN_LOG_LEVEL` is
consulted, and later C++ errors (a failed `cuInit`) follow. So, in the
command's process only: `TF_CPP_MIN_LOG_LEVEL` defaults to 3, and file
descriptor 2 points to a temporary file while TensorFlow is imported (what
was captured is replayed if the import fails). `--verbosity` (or `-v`)
on the command line keeps TensorFlow's defaults.

`tfmeta/__init__.py` calls `silence_for_command()` before it imports
TensorFlow; it does nothing in any other process (Python programs that
import tfmeta, the tests).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator, Sequence

COMMAND = "tfmeta"
COMMAND_MODULE = "tfmeta.cli.main"
_VERBOSITY_FLAGS = ("--verbosity", "-verbosity", "--v", "-v")
HELP_FLAGS = ("--help", "-help", "-h", "--helpfull", "-helpfull", "--helpshort", "-helpshort")


def is_command(argv: Sequence[str], orig_argv: Sequence[str]) -> bool:
    """Whether this process is the `tfmeta` command (the console script or `python -m`)."""
    if argv and os.path.basename(argv[0]) == COMMAND:
        return True
    return any(
        flag == "-m" and module == COMMAND_MODULE
        for flag, module in zip(orig_argv, list(orig_argv)[1:])
    )


def asks_for_logs(argv: Sequence[str]) -> bool:
    """Whether the command line sets absl's `--verbosity` (or `-v`)."""
    return any(arg.split("=", 1)[0] in _VERBOSITY_FLAGS for arg in argv[1:])


@contextlib.contextmanager
def stderr_captured() -> Iterator[None]:
    """Points file descriptor 2 to a temporary file; replays it if the body raises."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def asks_for_help(argv: Sequence[str]) -> bool:
    """Whether the command line asks for help (`tfmeta.cli.help` answers without TensorFlow)."""
    return list(argv[1:2]) == ["help"] or any(arg in HELP_FLAGS for arg in argv[1:])


def help_only() -> bool:
    """Whether this process is the `tfmeta` command asked for help (it needs no TensorFlow)."""
    return is_command(sys.argv, getattr(sys, "orig_argv", ())) and asks_for_help(sys.argv)


def silence_for_command() -> None:
    """In the `tfmeta` command only: quiets TensorFlow's C++ logs and imports TensorFlow.

    A request for help loads nothing: it is answered before TensorFlow is needed.
    """
    if not is_command(sys.argv, getattr(sys, "orig_argv", ())) or asks_for_logs(sys.argv):
        return
    if help_only():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_captured():
        import tensorflow  # noqa: F401  (its start-up lines go to the captured file)
