"""`tfmeta train`, `evaluate` and `export`: a run directory that explains itself.

`<output_dir>/` holds (see `reporting.RUN_README`, also written there as
`README.md`): `options.json`, `checkpoints/`, `history.csv`, `logs/`
(TensorBoard), `best.keras`, `learner.keras`, `metrics.json`, the PNG figures
and `evaluations/` (what `evaluate` wrote).

While training: a progress line every few seconds (`progress`), validation
after every epoch with the best epoch's learner kept (`validation`), and
TensorBoard summaries between epochs (`step_summaries`). `learner.keras` is
the best validation epoch's learner when the run validates, else the last.

Resuming: `train` into a directory that holds checkpoints continues from the
last complete one (`tfmeta.checkpointing.MetaCheckpoint`, atomic, written at
every epoch end) and says so. The episode stream continues where it stopped
(it is a pure function of the seed and the epoch, see `tasks`), and the
optimizer state, the step counter, BatchNorm statistics and Dropout seed
states come back with the weights: a run killed and resumed ends with the
same weights and metrics as one never interrupted.

Non-finite values: training stops at the first meta-update whose loss is
NaN or Inf (`divergence.StopOnNonFiniteLoss`); variables holding NaN or Inf
are never written to a checkpoint or to `learner.keras`. `metrics.json`
then reads `"status": "diverged"` and the command exits with code 3.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import pathlib
import shutil
import tempfile
import zipfile

import keras

from tfmeta import checkpointing, distribute
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.data import temporary_files
from tfmeta.keep_best import KeepBest
from tfmeta.cli import divergence, learners, progress, reporting, run_directory, step_summaries
from tfmeta.cli import options as options_lib
from tfmeta.cli import tasks
from tfmeta.cli import validation as validation_lib
from tfmeta.cli.options import RunOptions
from tfmeta.learners.n_way import NWayClassifier

BEST_LEARNER_FILE = "best.keras"


def _save_learner(learner: keras.Model, path: pathlib.Path) -> None:
    """Writes `learner.keras` through a temporary file: a failed save keeps the previous one."""
    checkpointing.check_finite(learner.variables, f"learner to {path}")
    # Keras wants .keras; its zip writer names no file, the OSError then names `path`.
    temporary_files.write_through_temporary(path, learner.save, suffix=".keras")


def load_learner(output_dir: str | os.PathLike) -> keras.Model:
    """The learner `tfmeta train` saved in `output_dir`.

    Raises:
        ValueError: naming the file, if it is damaged or is no learner `train`
            wrote (Keras refuses files that name arbitrary functions or hold
            Lambda layers).
    """
    path = pathlib.Path(output_dir) / options_lib.LEARNER_FILE
    if path.is_file() and not zipfile.is_zipfile(path):
        reason = "it is not a .keras zip archive (truncated or damaged?)"
    else:
        try:
            return keras.saving.load_model(path)
        except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise ValueError(
        f"could not load {path}: {reason}; train the run again (`tfmeta train "
        f"--output_dir={output_dir}` resumes from its checkpoints)"
    )


def _trim_history(path: pathlib.Path, epochs: int) -> None:
    """Keeps the header and the complete rows of the first `epochs` epochs of a CSVLogger file.

    Rows of epochs after the last checkpoint (written before a kill) would
    otherwise appear twice once those epochs are trained again.
    """
    if not path.is_file():
        return
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if not rows:
        return
    header, kept = rows[0], [rows[0]]
    for row in rows[1:]:
        if len(row) == len(header) and row[0].isdigit() and int(row[0]) < epochs:
            kept.append(row)
    text = io.StringIO()
    csv.writer(text).writerows(kept)  # the "\r\n" rows of CSVLogger
    temporary_files.write_atomically(path, text.getvalue())


@contextlib.contextmanager
def _worker_directory(output_dir: str):
    """A scratch run directory for a worker that is not the chief.

    Every worker runs the same program (collective ops need all of them), but
    only the chief's files are kept: the others write here, starting from a
    copy of the chief's checkpoints so a resumed run resumes everywhere.
    """
    scratch = tempfile.mkdtemp(prefix="tfmeta-worker-")
    chief_checkpoints = pathlib.Path(output_dir) / options_lib.CHECKPOINT_DIR
    if chief_checkpoints.is_dir():
        shutil.copytree(chief_checkpoints, pathlib.Path(scratch) / options_lib.CHECKPOINT_DIR)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def train(options: RunOptions) -> dict:
    """Meta-trains (or continues a run), saves the learner, evaluates it on held-out tasks.

    Under `--strategy=multi_worker` every worker trains; only the chief
    (worker 0) writes the run directory.

    Raises:
        divergence.TrainingDiverged: after a NaN or Inf loss (metrics.json says so).
    """
    strategy = distribute.make_strategy(options.strategy)
    if distribute.is_chief(strategy):
        return _train(options, strategy)
    with _worker_directory(options.output_dir) as scratch:
        return _train(dataclasses.replace(options, output_dir=scratch), strategy)


def _train(options: RunOptions, strategy) -> dict:
    output_dir = pathlib.Path(options.output_dir)
    source = tasks.build(options)
    with strategy.scope():
        learner = learners.build(options, source.input_shape, source.classification)
    run_directory.check_train_directory(str(output_dir))  # also for callers other than main
    run_directory.mark(output_dir)  # first: a killed run is still recognised as a run
    temporary_files.remove_stale_temporaries(output_dir)
    temporary_files.write_atomically(
        options_lib.run_file(output_dir), options_lib.saved_options_text(options)
    )
    temporary_files.write_atomically(output_dir / "README.md", reporting.RUN_README)

    checkpoint_dir = output_dir / options_lib.CHECKPOINT_DIR
    checkpointing.remove_leftovers(checkpoint_dir)
    resume_point = checkpointing.find_resume_point(checkpoint_dir)
    for note in resume_point.describe_rejected():
        print(f"tfmeta: {checkpoint_dir}/: {note}", flush=True)
    start = resume_point.step
    if start:
        print(
            f"tfmeta: resuming from {checkpoint_dir / f'ckpt-{start}'}: {start} of "
            f"{options.iterations} {options.step_name} done",
            flush=True,
        )
    else:
        print(f"tfmeta: starting a new run in {output_dir}/", flush=True)
    initial_epoch = start // options.steps_per_epoch
    history = output_dir / "history.csv"
    _trim_history(history, initial_epoch)
    checkpoint = checkpointing.MetaCheckpoint(checkpoint_dir)
    keep_best = _keep_best(learner, source, output_dir, history)
    fit_arguments = dict(
        steps_per_epoch=options.steps_per_epoch,
        epochs=options.iterations // options.steps_per_epoch,
        initial_epoch=initial_epoch,
        callbacks=_callbacks(learner, source, options, output_dir, keep_best, checkpoint),
        verbose=0,  # ProgressLine reports
        shuffle=False,  # the episode streams are random already
    )
    run = {"iterations_done": start, "resumed_from": start or None}
    try:
        if options.algorithm == "finetune":
            learner.pretrain(
                source.train_images(start),
                num_classes=source.num_train_classes,
                optimizer=learners.outer_optimizer(options),
                **fit_arguments,
            )
        else:
            learner.fit(source.train_episodes(initial_epoch), **fit_arguments)
        run["iterations_done"] = checkpoint.saved_step
        learner = _keep_learner(learner, output_dir, keep_best, run)
    except FloatingPointError as error:
        run["iterations_done"] = int(checkpoint.model.optimizer.iterations.numpy())
        run["last_checkpoint"] = checkpointing.latest_step(checkpoint_dir) or None
        message = (
            f"training diverged: {error}. Training stops at the first NaN or Inf loss and never "
            f"saves non-finite weights (last complete checkpoint: step "
            f"{run['last_checkpoint'] or 'none'}). Lower --meta_learning_rate or "
            "--inner_learning_rate and train into a new --output_dir"
        )
        reporting.record_divergence(output_dir, options, run, message)
        raise divergence.TrainingDiverged(message) from error
    return reporting.report(learner, source, options, output_dir, run)


def _keep_best(learner, source, output_dir: pathlib.Path, history: pathlib.Path):
    """The callback keeping `best.keras` when the run validates (None when it does not)."""
    if source.val_episodes() is None:
        return None
    monitor, mode = ("val_accuracy", "max") if source.classification else ("val_loss", "min")
    best, best_epoch = validation_lib.best_in_history(history, monitor, mode)  # a resumed run's
    return KeepBest(
        monitor, mode, lambda epoch, value: _save_learner(learner, output_dir / BEST_LEARNER_FILE),
        best, best_epoch,
    )


def _callbacks(learner, source, options: RunOptions, output_dir: pathlib.Path, keep_best,
               checkpoint) -> list[keras.callbacks.Callback]:
    """The callbacks of `train`'s `fit`, in the order their epoch-end work must run."""
    validation = source.val_episodes()
    items, per_step = (
        ("images", options.batch_size) if options.algorithm == "finetune"
        else ("tasks", options.meta_batch_size)
    )
    return [
        divergence.StopOnNonFiniteLoss(),  # first: a diverged step is never recorded or saved
        *([validation_lib.EpisodeValidation(learner, validation)] if validation else []),
        progress.ProgressLine(
            options.iterations, options.steps_per_epoch, per_step, options.progress_seconds,
            items=items, step_name=options.step_name,
        ),
        keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(output_dir / "logs")),
        step_summaries.StepSummaries(
            learner, output_dir / "logs" / "steps", options.log_every, options.steps_per_epoch,
            per_step, source.probe_batch(), items=items,
            draw_adaptation=options.dataset == options_lib.SINUSOID and options.algorithm != "cnp",
        ),
        *([keep_best] if keep_best else []),
        checkpoint,  # last: a checkpoint follows the history rows of its epochs
    ]


def _keep_learner(learner, output_dir: pathlib.Path, keep_best, run: dict):
    """Writes `learner.keras` and returns the learner the run reports on.

    With validation that is the learner of the best validation epoch
    (`best.keras`, as `EarlyStopping(restore_best_weights=True)` would keep);
    `run` records which epoch. Without validation, the last one.
    """
    path = output_dir / options_lib.LEARNER_FILE
    best = output_dir / BEST_LEARNER_FILE
    if keep_best is None or keep_best.best is None or not best.is_file():
        _save_learner(learner, path)
        return learner
    temporary_files.write_through_temporary(
        path, lambda temporary: shutil.copyfile(best, temporary), suffix=".keras"
    )
    run["selected"] = {
        "epoch": keep_best.best_epoch + 1,
        keep_best.monitor: keep_best.best,
        "file": BEST_LEARNER_FILE,
    }
    print(
        f"tfmeta: {options_lib.LEARNER_FILE} holds the learner of epoch {keep_best.best_epoch + 1} "
        f"(best {keep_best.monitor} {keep_best.best:.4g})",
        flush=True,
    )
    return load_learner(output_dir)


def evaluate(options: RunOptions) -> dict:
    """Re-evaluates the learner `tfmeta train` saved in `--output_dir`.

    Writes `evaluations/<setting>.json` (and its figure) in the run, never
    the run's own `metrics.json` or figures. With `--query_statistics` the
    queries are predicted in that mode instead of the learner's own (e.g. a
    transductive run's accuracy when each query is served alone).
    """
    output_dir = pathlib.Path(options.output_dir)
    learner = load_learner(output_dir)
    trained_mode = options_lib.load_run_options(output_dir).query_statistics
    if options.query_statistics != trained_mode:
        learner.query_statistics = options.query_statistics
    if isinstance(learner, NWayClassifier) and learner.ways not in (None, options.evaluation_ways):
        learner.ways = None  # as `train` builds it for other --eval_ways: ways from each episode
    if hasattr(learner, "eval_inner_steps"):
        learner.eval_inner_steps = options.eval_inner_steps
    if options.eval_inner_learning_rate is not None:
        learner.eval_inner_learning_rate = options.eval_inner_learning_rate
    if options.eval_inner_batch_size is not None:
        learner.eval_inner_batch_size = options.eval_inner_batch_size
    source = tasks.build(options)
    previous = reporting.read_metrics(output_dir)
    run = {key: previous.get(key) for key in ("iterations_done", "resumed_from", "selected")}
    return reporting.report(
        learner, source, options, output_dir, run,
        name=reporting.evaluation_name(options, trained_query_statistics=trained_mode),
    )


def _export_destination(options: RunOptions, exporters) -> str:
    """Where `export` writes; raises a FileExistsError rather than replace anything."""
    output_dir = pathlib.Path(options.output_dir)
    name = output_dir.resolve().name
    if options.format == "saved_model":
        base_dir = options.export_dir or str(output_dir / "export" / name)
        taken = exporters.versions(base_dir)
        if options.version in taken:
            raise FileExistsError(
                f"version {options.version} already exists in {base_dir}; leave --version unset "
                f"for the next free one ({taken[-1] + 1}), or pass another --export_dir"
            )
        return base_dir
    path = options.export_dir or str(output_dir / "export" / f"{name}.tflite")
    if not path.endswith(".tflite"):
        path = os.path.join(path, exporters.export_command.TFLITE_FILENAME)
    if os.path.exists(path):
        raise FileExistsError(f"{path} already exists; pass another --export_dir, or delete it")
    return path


def _check_served_query_statistics(learner, options: RunOptions) -> None:
    """Refuses, before writing anything, to serve a learner whose prediction of a query
    depends on the request's other queries unless `--query_statistics` says how to serve it."""
    if options.query_statistics is None and query_statistics_lib.depends_on_query_batch(
        learner.model, learner.query_statistics
    ):
        raise ValueError(
            f"the learner in {options.output_dir} normalises each query batch with its own "
            f"BatchNorm statistics (trained with --query_statistics={learner.query_statistics}), "
            "so a served query would depend on the request's other queries; pass "
            "--query_statistics=moving or support to serve each query alone, or "
            "--query_statistics=transductive to export it as trained, for clients that always "
            "send whole query batches"
        )


def export(options: RunOptions) -> str:
    """Exports the learner of `--output_dir` for TF Serving or LiteRT; returns what was written.

    Tasks have the evaluation's shape: `--eval_ways` classes (None for
    regression) of `--eval_shots` support examples. Queries are served in the
    learner's own query-statistics mode, or in `--query_statistics` when given
    (a learner trained transductively needs it). An existing version or file
    is never replaced.
    """
    from tfmeta import exporters  # only `export` needs them

    learner = load_learner(options.output_dir)
    checkpointing.check_finite(learner.variables, "export")
    _check_served_query_statistics(learner, options)
    try:
        path = exporters.export(
            learner,
            _export_destination(options, exporters),
            format=options.format,
            ways=options.evaluation_ways if options.classification else None,
            shots=options.evaluation_shots,
            version=options.version,
            query_size=options.query_size,
            preprocessing=tasks.image_preprocessing(options),
            query_statistics=options.query_statistics,
        )
    except exporters.UnsupportedModelError as error:
        raise ValueError(f"{error}; --format=saved_model exports models with any layer") from error
    print(f"tfmeta: exported {options.format} to {path}", flush=True)
    return path


COMMANDS = {"train": train, "evaluate": evaluate, "export": export}
