"""A `--flagfile` that includes itself, directly or through others, is a user error.

absl prints a warning and skips the repeated file (or recurses until Python's
limit when the same file is named by two different paths), and the command
would then run with defaults the user never chose. `check_no_cycle` follows
the `--flagfile` directives of the command line and of the files they name,
comparing real paths, before absl parses anything.
"""

from __future__ import annotations

import os
from typing import Sequence

_DIRECTIVES = ("--flagfile=", "-flagfile=")
_SEPARATE = ("--flagfile", "-flagfile")


def _named_files(args: Sequence[str]) -> list[str]:
    """The files named by `--flagfile=F` (or `--flagfile F`) in `args`."""
    names = []
    for index, arg in enumerate(args):
        if arg.startswith(_DIRECTIVES):
            names.append(arg.split("=", 1)[1])
        elif arg in _SEPARATE and index + 1 < len(args):
            names.append(args[index + 1])
    return [os.path.expanduser(name.strip()) for name in names if name.strip()]


def _directives_in(path: str) -> list[str]:
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle]
    except (OSError, UnicodeDecodeError):
        return []  # absl reports an unreadable flagfile itself
    return _named_files([line for line in lines if line.startswith(_DIRECTIVES)])


def check_no_cycle(args: Sequence[str]) -> None:
    """Raises a ValueError if a flagfile named in `args` includes itself.

    Args:
        args: the command line without the program name.
    """

    def visit(path: str, chain: list[str]) -> None:
        real = os.path.realpath(path)
        if real in chain:
            loop = " -> ".join([*chain[chain.index(real) :], real])
            raise ValueError(
                f"--flagfile={path} includes itself ({loop}); remove the --flagfile line that "
                "closes the loop"
            )
        for included in _directives_in(path):  # relative to the working directory, as absl reads it
            visit(included, [*chain, real])

    for name in _named_files(args):
        visit(name, [])
