"""`tfmeta --help`: the commands and tfmeta's own flags, answered without loading TensorFlow.

absl's `--help` lists the flags of the main module only and exits 1, and its
`--helpfull` mixes in every flag TensorFlow's libraries define (TPU, test and
logging flags, some 240 lines). tfmeta's help lists the flags of
`tfmeta.cli.options` grouped by the command that reads them, and exits 0.
"""

from __future__ import annotations

import textwrap

from absl import flags

from tfmeta.cli import options

WIDTH = 100
CONFIG_NAMES = (
    "sinusoid_<algorithm>, gaussian_process_cnp, omniglot_<N>w<K>s_<algorithm> (N: 5/20, K: 1/5)."
)
COMMANDS = (
    ("train", "meta-train (or resume), validate each epoch, evaluate, write a run directory"),
    ("evaluate", "evaluate a run's learner again; writes evaluations/<setting>.json in the run"),
    ("export", "export a run's learner for TF Serving (SavedModel) or LiteRT (.tflite)"),
)
GENERAL = (
    "--flagfile=FILE reads flags from FILE (one --flag=value per line); flags given on the "
    "command line override it and --config. --verbosity=0 shows TensorFlow's logs."
)


def _flag_line(flag: flags.Flag) -> str:
    default = "" if flag.default is None else f"={flag.default_as_str.strip(chr(39))}"
    text = flag.help
    if flag.name == "config":  # not its 35 names: their pattern
        text = text.split(">: ", 1)[-1] + " Names: " + CONFIG_NAMES
    return textwrap.fill(
        f"--{flag.name}{default}  {text}",
        WIDTH,
        initial_indent="  ",
        subsequent_indent="      ",
        break_on_hyphens=False,
    )


def help_text(usage: str, command_fields: dict[str, tuple[str, ...]]) -> str:
    """The help of the `tfmeta` command.

    Args:
        usage: the usage line.
        command_fields: the option names each command reads from flags.

    Returns:
        The text to print, ending with a newline.
    """
    by_name = {flag.name: flag for flag in flags.FLAGS.get_flags_for_module(options)}
    lines = [usage, ""]
    lines += [f"  {name:<9} {what}" for name, what in COMMANDS]
    lines += ["", textwrap.fill(GENERAL, WIDTH), ""]
    shown: set[str] = set()
    for command, _ in COMMANDS:
        names = [name for name in command_fields[command] if name in by_name]
        fresh = sorted(name for name in names if name not in shown)
        again = sorted(name for name in names if name in shown)
        lines.append(f"{command} flags:")
        lines += [_flag_line(by_name[name]) for name in fresh]
        if again:
            lines.append(textwrap.fill(
                f"  and, as for train: {', '.join('--' + name for name in again)}",
                WIDTH, subsequent_indent="      ",
            ))
        lines.append("")
        shown.update(names)
    rest = sorted(set(by_name) - shown)
    lines.append("meta-RL (tfmeta train --algorithm=maml_trpo|maml_ppo --env=NAME):")
    lines += [_flag_line(by_name[name]) for name in rest]
    return "\n".join(lines) + "\n"
