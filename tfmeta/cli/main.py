"""The `tfmeta` command line: `tfmeta train | evaluate | export [--flags]`.

Flags come from the command line, a `--flagfile=FILE` (one `--flag=value`
per line) and a named `--config`; see `tfmeta.cli.options` for precedence.

Exit codes: 0 success; 2 a user error (bad flag, missing or unusable data,
an existing export version, a directory that is not a run, a read-only or
full disk, a damaged file: see `tfmeta.cli.user_errors`), reported as one
`tfmeta: error:` line on stderr that names the problem and the fix, never a
traceback; 3 training diverged (a NaN or Inf loss; `metrics.json` says
`"status": "diverged"`). TensorFlow's logs and Python warnings stay off
stderr unless `--verbosity` is given (`tfmeta.cli.tensorflow_logs`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings

from absl import app, flags, logging

from tfmeta.cli import command_help, flagfiles, options, run_directory, tensorflow_logs

FLAGS = flags.FLAGS
USAGE = "usage: tfmeta {train,evaluate,export} [--flags]   (tfmeta --help lists the flags)"
EXIT_USAGE = 2
EXIT_DIVERGED = 3
COMMAND_NAMES = ("evaluate", "export", "train")
# The options each command reads from flags; `evaluate` and `export` take
# the others from the run they read.
# `evaluate` and `export` with `--query_statistics` predict queries in another mode than the
# learner's own: the accuracy a served mode keeps, then the export in that mode.
_EVALUATE_FIELDS = options.EVALUATION_FIELDS + options.EXECUTION_FIELDS + (
    "seed", "output_dir", "query_statistics"
)
_EXPORT_FIELDS = options.EXPORT_FIELDS + ("output_dir", "query_statistics")
_TRAIN_FIELDS = tuple(
    name for name in options.FIELDS if name not in ("export_dir", "format", "version", "query_size")
)
COMMAND_FIELDS = {"train": _TRAIN_FIELDS, "evaluate": _EVALUATE_FIELDS, "export": _EXPORT_FIELDS}
PATH_FIELDS = ("output_dir", "export_dir", "data_dir", "dataset")


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    print(f"tfmeta: error: {message}", file=sys.stderr)
    sys.exit(code)


def _fail_on_user_error(error: Exception) -> None:
    """A user's fault ends the command with one line; anything else is a bug: its traceback."""
    from tfmeta.cli import user_errors  # loads TensorFlow

    if not user_errors.is_user_error(error):
        raise error
    _fail(user_errors.describe(error))


def _parse_flags(argv: list[str]) -> list[str]:
    """Parses flags; reports a bad flag or flagfile in one line with exit code 2."""
    try:
        flagfiles.check_no_cycle(argv[1:])
        return FLAGS(argv)
    except flags.Error as error:
        _fail(f"{error}. {USAGE}")
    except ValueError as error:
        _fail(str(error))


def resolve_options(command: str, explicit: dict) -> options.RunOptions:
    """The checked options of `command` from the explicit flags (and the run it reads).

    Raises:
        ValueError: naming the first problem and its fix.
    """
    foreign = [name for name in explicit if name not in COMMAND_FIELDS[command]]
    if foreign:
        owner = "export" if foreign[0] in _EXPORT_FIELDS else "train"
        source = "" if command == "train" else f" ({command} reads it from the run's options.json)"
        raise ValueError(
            f"--{foreign[0]} is a flag of `tfmeta {owner}`, not of `tfmeta {command}`{source}; "
            "drop it"
        )
    for name in PATH_FIELDS:
        if name in explicit and not str(explicit[name]).strip():
            raise ValueError(f"--{name} is empty (an unset shell variable?); pass a path")
    if command == "train":
        run_options = options.resolve(explicit)
        output_dir = run_options.output_dir
        run_directory.check_train_directory(output_dir)
    else:
        output_dir = explicit.get("output_dir") or options.resolve({}).output_dir
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir={output_dir} is a file; pass a directory")
    saved = options.load_run_options(output_dir)
    if command == "train":
        from tfmeta import checkpointing  # loads TensorFlow

        run_directory.check_writable(output_dir, "output_dir")
        checkpoints = os.path.join(output_dir, options.CHECKPOINT_DIR)
        trained = bool(checkpointing.checkpoint_steps(checkpoints)) or os.path.exists(
            os.path.join(output_dir, options.LEARNER_FILE)
        )
        changed = (
            options.changed_options(saved, run_options, options.RESUMABLE_CHANGES)
            if saved and trained
            else []
        )
        if changed:
            raise ValueError(
                f"--output_dir={output_dir} holds a run trained with other options "
                f"({', '.join(changed[:4])}); pass the same options to continue it, or choose "
                "a new --output_dir"
            )
    else:
        learner = os.path.join(output_dir, options.LEARNER_FILE)
        if run_directory.is_meta_rl_run(output_dir):
            raise ValueError(
                f"{output_dir} is a meta-RL run; `tfmeta {command}` takes classifier and "
                "regression runs. `tfmeta train --env=...` evaluated it (metrics.json) and "
                "exported its policy (export/); run that command again to continue it"
            )
        if not os.path.isfile(learner) or saved is None:
            raise ValueError(
                f"no trained learner at {learner}; run `tfmeta train --output_dir={output_dir}` "
                "first"
            )
        run_options = options.resolve(explicit, base=saved)
        if command == "export" and "query_statistics" not in explicit:
            # Unset: serve the learner's own mode, refused where it is transductive.
            run_options = dataclasses.replace(run_options, query_statistics=None)
        if (
            run_options.algorithm == "finetune"
            and run_options.evaluation_ways != saved.evaluation_ways
        ):
            raise ValueError(
                f"the finetune learner in {output_dir} has a {saved.evaluation_ways}-way head; "
                "leave --eval_ways unset, or train another run with that --eval_ways"
            )
        if command == "evaluate":
            run_directory.check_writable(output_dir, "output_dir")
        else:
            destination = run_options.export_dir or os.path.join(output_dir, "export")
            run_directory.check_writable(destination, "export_dir")
    options.check_options(run_options)
    return run_options


def _run_meta_rl(command: str) -> None:
    """`tfmeta train --algorithm=maml_trpo|maml_ppo --env=NAME` (see `tfmeta.cli.rl_train`)."""
    if command != "train" or FLAGS.algorithm not in options.RL_ALGORITHMS:
        given = f"`tfmeta {command} --algorithm={FLAGS.algorithm}" + (
            f" --env={FLAGS.env}`" if FLAGS.env else "`"
        )
        _fail(
            "meta-RL runs are `tfmeta train --algorithm=maml_trpo|maml_ppo --env=NAME`, which "
            f"also evaluates and exports; received {given}"
        )
    from tfmeta.cli import rl_train

    try:
        rl_train.train(FLAGS)
    except Exception as error:
        _fail_on_user_error(error)


def _configure_cpu_threads(run_options: options.RunOptions) -> None:
    """`--cpu_threads`, before the command's first TensorFlow op: FineTune's pretraining
    steps on one batch of images, the other algorithms on a meta-batch of tasks. `auto`
    leaves the pools of a process whose TensorFlow already runs (`run` called in-process)."""
    from tfmeta import cpu_threads  # loads TensorFlow

    tasks_per_step = 1 if run_options.algorithm == "finetune" else run_options.meta_batch_size
    try:
        cpu_threads.configure(run_options.cpu_threads, tasks_per_step)
    except RuntimeError:
        if run_options.cpu_threads != cpu_threads.AUTO:
            raise


def _main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in COMMAND_NAMES:
        received = " ".join(argv[1:]) or "nothing"
        _fail(f"expected one command of {list(COMMAND_NAMES)}; received: {received}. {USAGE}")
    command = argv[1]
    if not FLAGS["verbosity"].present:  # TensorFlow's and Keras's notes would bury the output
        logging.set_verbosity(logging.ERROR)
        warnings.simplefilter("ignore")
    if FLAGS.algorithm in options.RL_ALGORITHMS or FLAGS["env"].present:
        _run_meta_rl(command)
        return
    try:
        run_options = resolve_options(command, options.explicit_flags(FLAGS))
    except Exception as error:
        _fail_on_user_error(error)

    # The commands build models and read data: import them once the options are valid.
    from tfmeta.cli import commands, divergence

    try:
        _configure_cpu_threads(run_options)
        commands.COMMANDS[command](run_options)
    except divergence.TrainingDiverged as error:
        _fail(str(error), EXIT_DIVERGED)
    except Exception as error:
        _fail_on_user_error(error)


def run(argv: list[str] | None = None) -> None:
    """Entry point of the `tfmeta` console script; `argv` defaults to `sys.argv`.

    Ends the process (`SystemExit`) with one of the exit codes above; `--help`
    (or `-h`, `--helpfull`, `tfmeta help`) prints tfmeta's flags and exits 0.
    """
    argv = sys.argv if argv is None else argv
    if tensorflow_logs.asks_for_help(argv):
        sys.stdout.write(command_help.help_text(USAGE, COMMAND_FIELDS))
        sys.exit(0)
    app.run(_main, argv=argv, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
