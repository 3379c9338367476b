"""`MetaCheckpoint`: checkpoints of a training run that survive kills and damaged files.

A run's checkpoint folder holds `ckpt-<step>.index` / `ckpt-<step>.data-*`
pairs (TensorFlow's format, one per epoch end) and the `checkpoint` state
file naming the newest. Resuming never trusts the state file alone: every
`ckpt-<step>` found on disk is a candidate, newest first, and the first one
that reads back complete (every tensor, checksums included) and finite is
used (`find_resume_point`); each newer one passed over is reported with its
reason. A new checkpoint is read back the same way before an older one is
deleted, so a valid checkpoint is never removed while the newer one is not
proven good. Temporary files of a save that a kill interrupted are removed
when training starts (`remove_leftovers`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import uuid
from typing import Iterable

import keras
import numpy as np
import tensorflow as tf

from tfmeta.argument_validation import check_integer

_PREFIX = "ckpt"
_GROUPS = ("model_variables", "optimizer_variables")
STATE_FILE = "checkpoint"  # the name TensorFlow's checkpoint tools read
_STATE_NAME = f"the state file {STATE_FILE!r}"
_CHECKPOINT_FILE = re.compile(rf"{_PREFIX}-(\d+)\.(index|data-\d+-of-\d+)")
# What an interrupted save leaves: TensorFlow's sharded temporary folder
# (`ckpt-<step>_temp/`), its `.tempstate<n>` files, and a state file's
# temporary copy (`checkpoint.tmp<hex>`).
_LEFTOVER = re.compile(rf"({_PREFIX}-\d+_temp.*|.*\.tempstate\d+|{STATE_FILE}\.tmp[0-9a-f]+)")


def check_finite(variables: Iterable, what: str) -> None:
    """Raises a `FloatingPointError` if a floating-point variable holds NaN or Inf.

    Args:
        variables: Keras or TensorFlow variables.
        what: what was about to be written, for the message (e.g.
            `"checkpoint of step 40"`).
    """
    bad = [
        getattr(v, "path", None) or v.name
        for v in variables
        if tf.as_dtype(v.dtype).is_floating and not np.isfinite(np.asarray(v)).all()
    ]
    if bad:
        raise FloatingPointError(
            f"refusing to write the {what}: {len(bad)} variable(s) hold NaN or Inf, e.g. {bad[:3]}"
        )


def checkpoint_problem(prefix: str | os.PathLike) -> str | None:
    """Why the checkpoint at `prefix` (`.../ckpt-<step>`) cannot be restored, or None.

    Every tensor is read (TensorFlow verifies each one's checksum), so a
    missing, truncated or garbled index or data file is found, and so is a
    floating-point tensor holding NaN or Inf.
    """
    prefix = os.fspath(prefix)
    if not os.path.isfile(prefix + ".index"):
        return "its .index file is missing (a save that did not finish)"
    try:
        reader = tf.train.load_checkpoint(prefix)
        dtypes = reader.get_variable_to_dtype_map()
        if not any(name.split("/")[0] in _GROUPS for name in dtypes):
            return "it holds no model variables (not written by MetaCheckpoint)"
        for name, dtype in sorted(dtypes.items()):
            value = reader.get_tensor(name)
            if dtype.is_floating and not np.isfinite(value).all():
                return f"variable {name} holds NaN or Inf"
    except Exception as error:  # the reader raises OpError, IndexError, ... on damaged files
        message = getattr(error, "message", str(error))
        return f"it is unreadable ({_first_line(message) or type(error).__name__})"
    return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def checkpoint_steps(directory: str | os.PathLike) -> list[int]:
    """The steps of every `ckpt-<step>` with a file in `directory`, newest first."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    steps = {
        int(match[1])
        for name in os.listdir(directory)
        if (match := _CHECKPOINT_FILE.fullmatch(name))
    }
    return sorted(steps, reverse=True)


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a run continues from, and what was passed over to find it.

    Attributes:
        path: the checkpoint prefix (`.../ckpt-<step>`), or None when there is
            no usable checkpoint.
        step: its step (0 when `path` is None).
        rejected: `(name, reason)` for every newer checkpoint that cannot be
            restored, and for a state file that is unreadable or names a
            checkpoint that is missing.
    """

    path: str | None
    step: int
    rejected: tuple[tuple[str, str], ...] = ()

    def describe_rejected(self) -> list[str]:
        """One line per rejected item, e.g. `skipped ckpt-40: it is unreadable (...)`."""
        return [f"skipped {name}: {reason}" for name, reason in self.rejected]


def _state_file_problem(directory: str, steps: list[int]) -> tuple[str, str] | None:
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        text = handle.read().decode("utf-8", "replace")
    match = re.search(r'^model_checkpoint_path:\s*"([^"]*)"\s*$', text, re.MULTILINE)
    if match is None:
        return (_STATE_NAME, "it is unreadable (the next save rewrites it)")
    named = re.fullmatch(rf"{_PREFIX}-(\d+)", os.path.basename(match[1]))
    if named is None or int(named[1]) not in steps:
        return (_STATE_NAME, f"it names {match[1]}, which is missing")
    return None


def find_resume_point(directory: str | os.PathLike) -> ResumePoint:
    """The newest checkpoint in `directory` that can be restored (see `checkpoint_problem`)."""
    directory = os.fspath(directory)
    steps = checkpoint_steps(directory)
    rejected = []
    state_problem = _state_file_problem(directory, steps)
    if state_problem:
        rejected.append(state_problem)
    for step in steps:
        prefix = os.path.join(directory, f"{_PREFIX}-{step}")
        problem = checkpoint_problem(prefix)
        if problem is None:
            return ResumePoint(prefix, step, tuple(rejected))
        rejected.append((os.path.basename(prefix), problem))
    return ResumePoint(None, 0, tuple(rejected))


def latest_step(directory: str | os.PathLike) -> int:
    """The step of the newest restorable checkpoint in `directory` (0: none)."""
    return find_resume_point(directory).step


def remove_leftovers(directory: str | os.PathLike) -> list[str]:
    """Deletes the temporary files of saves a kill interrupted; returns their names."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        if _LEFTOVER.fullmatch(name):
            path = os.path.join(directory, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            removed.append(name)
    return removed


def _write_state(directory: str, steps: list[int]) -> None:
    """Atomically points the state file at `steps[0]` (TensorFlow's text format)."""
    names = [f"{_PREFIX}-{step}" for step in steps]
    text = f'model_checkpoint_path: "{names[0]}"\n' + "".join(
        f'all_model_checkpoint_paths: "{name}"\n' for name in reversed(names)
    )
    path = os.path.join(directory, STATE_FILE)
    temporary = f"{path}.tmp{uuid.uuid4().hex}"
    try:
        with open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _delete_checkpoint(directory: str, step: int) -> None:
    for name in os.listdir(directory):
        match = _CHECKPOINT_FILE.fullmatch(name)
        if match and int(match[1]) == step:
            os.remove(os.path.join(directory, name))


class MetaCheckpoint(keras.callbacks.Callback):
    """Saves a model's state at the end of every epoch; restores it when training starts.

    With `fit(steps_per_epoch=N)` that is a checkpoint every N optimizer steps
    (meta-updates). What is saved: every variable of the model
    (`model.variables`: weights, BatchNorm statistics, Dropout seed-generator
    state, a learner's learned inner learning rates) and of its optimizer
    (slots and `iterations`, the step counter). Checkpoints are named
    `ckpt-<step>` after the optimizer step they hold.

    A save writes the checkpoint's files, reads them back
    (`checkpoint_problem`), then atomically points the `checkpoint` state file
    at it, and only then deletes checkpoints beyond the `max_to_keep` newest.
    A process killed at any moment therefore leaves at least one complete
    checkpoint that was proven good. Variables holding NaN or Inf are never
    written (`FloatingPointError`); a checkpoint that does not read back
    raises an `OSError` and deletes nothing.

    On `on_train_begin` the temporary files of an interrupted save are
    removed and the newest restorable checkpoint (`find_resume_point`) is
    restored into the model and its optimizer (built first if needed), so
    `fit` continues from there; `resume_point` says which and what was
    skipped. The data and `initial_epoch` must continue from there too: read
    the step with `latest_step(directory)` before calling `fit`. A checkpoint
    that does not match the model variable for variable raises a
    `ValueError` (another model is no damage to fall back from).

    Place it after callbacks that record the epoch (`CSVLogger`,
    `TensorBoard`): a checkpoint then always comes after the records of the
    epochs it holds, so a resumed run can drop any record newer than its
    checkpoint.

    Args:
        directory: the checkpoint folder (created when needed).
        max_to_keep: how many of the newest checkpoints to keep (>= 1).

    Example:

    ```python
    from tfmeta import checkpointing

    step = checkpointing.latest_step("run/checkpoints")
    checkpoint = checkpointing.MetaCheckpoint("run/checkpoints")
    learner.fit(episodes.skip(step), steps_per_epoch=500, epochs=20,
                initial_epoch=step // 500, callbacks=[checkpoint])
    ```
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        super().__init__()
        max_to_keep = check_integer("max_to_keep", max_to_keep)
        self.directory = os.fspath(directory)
        self.max_to_keep = max_to_keep
        self.saved_step = -1  # the step of the last checkpoint written or restored
        self.resume_point: ResumePoint | None = None
        self._checkpoint: tf.train.Checkpoint | None = None

    def _variables(self) -> list:
        return list(self.model.variables) + list(self.model.optimizer.variables)

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if not optimizer.built:  # Keras builds it lazily, at the first update, for some models.
            optimizer.build(self.model.trainable_variables)
        self._checkpoint = tf.train.Checkpoint(
            model_variables=list(self.model.variables),
            optimizer_variables=list(optimizer.variables),
        )
        remove_leftovers(self.directory)
        self.resume_point = find_resume_point(self.directory)
        if self.resume_point.path is not None:
            self._restore(self.resume_point.path)
            self.saved_step = self._step()

    def _restore(self, path: str) -> None:
        stored = {
            tuple(name.split("/")[:2])
            for name, _ in tf.train.list_variables(path)
            if name.split("/")[0] in _GROUPS
        }
        expected = len(self._variables())
        try:
            if len(stored) != expected:
                raise ValueError(f"it holds {len(stored)} variables, the model {expected}")
            self._checkpoint.read(path).assert_existing_objects_matched()
        except (AssertionError, ValueError) as error:
            raise ValueError(
                f"the checkpoint {path} does not match this model and optimizer (was it "
                f"written with other settings?): {str(error).splitlines()[0]}"
            ) from error

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def save(self) -> str:
        """Writes, proves and records a checkpoint of the current step; returns its prefix.

        Raises:
            FloatingPointError: if a variable holds NaN or Inf (nothing written).
            OSError: if the checkpoint cannot be written or does not read back
                (no checkpoint deleted).
        """
        step = self._step()
        check_finite(self._variables(), f"checkpoint of step {step}")
        os.makedirs(self.directory, exist_ok=True)
        prefix = os.path.join(self.directory, f"{_PREFIX}-{step}")
        try:
            self._checkpoint.write(prefix)
        except tf.errors.OpError as error:
            remove_leftovers(self.directory)
            # TensorFlow's message ends with the system's reason: "...; File too large [Op:SaveV2]".
            reason = re.sub(r"\s*\[Op:\w+\]$", "", _first_line(error.message)).rsplit("; ", 1)[-1]
            raise OSError(f"could not write the checkpoint {prefix}: {reason}") from error
        problem = checkpoint_problem(prefix)
        if problem is not None:
            raise OSError(f"the checkpoint {prefix} just written does not read back: {problem}")
        # Older checkpoints only: newer ones are damaged files this run passed over.
        kept = [s for s in checkpoint_steps(self.directory) if s <= step][: self.max_to_keep]
        _write_state(self.directory, kept)
        for old in checkpoint_steps(self.directory):
            if old < step and old not in kept:
                _delete_checkpoint(self.directory, old)
        self.saved_step = step
        return prefix
