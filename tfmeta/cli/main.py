"""The `tfmeta` command line: `tfmeta train | evaluate | export [--flags]`.

Every user error ends with exit code 2 and one line on stderr naming the
problem, never a traceback.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tfmeta.cli import options

FLAGS = flags.FLAGS
USAGE = "usage: tfmeta {train,evaluate} [--flags]   (tfmeta --helpfull lists the flags)"
EXIT_USAGE = 2
COMMAND_NAMES = ("evaluate", "train")


def _fail(message: str) -> None:
    print(f"tfmeta: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def _parse_flags(argv: list[str]) -> list[str]:
    """Parses flags; reports a bad flag in one line with exit code 2."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        _fail(f"{error}. {USAGE}")


def _main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in COMMAND_NAMES:
        received = " ".join(argv[1:]) or "nothing"
        _fail(f"expected one command of {list(COMMAND_NAMES)}; received: {received}. {USAGE}")
    run_options = options.from_flags(FLAGS)
    try:
        options.check_options(run_options)
    except ValueError as error:
        _fail(str(error))

    from tfmeta.cli import commands  # imports TensorFlow: only once the options are valid

    try:
        commands.COMMANDS[argv[1]](run_options)
    except commands.USER_ERRORS as error:
        _fail(str(error))


def run() -> None:
    """Entry point of the `tfmeta` console script."""
    app.run(_main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
