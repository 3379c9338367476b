"""`MetaCheckpoint`: atomic checkpoints of a training run, at the end of every epoch."""

from __future__ import annotations

import os
import re
from typing import Iterable

import keras
import numpy as np
import tensorflow as tf

_PREFIX = "ckpt"
_GROUPS = ("model_variables", "optimizer_variables")


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


def latest_step(directory: str | os.PathLike) -> int:
    """The step of the last complete checkpoint `MetaCheckpoint` wrote in `directory` (0: none)."""
    path = tf.train.latest_checkpoint(os.fspath(directory))
    if path is None:
        return 0
    match = re.fullmatch(rf"{_PREFIX}-(\d+)", os.path.basename(path))
    if match is None:
        raise ValueError(
            f"Expected checkpoints named '{_PREFIX}-<step>' in {os.fspath(directory)!r}. "
            f"Received: {path!r}"
        )
    return int(match[1])


class MetaCheckpoint(keras.callbacks.Callback):
    """Saves a model's state at the end of every epoch; restores it when training starts.

    With `fit(steps_per_epoch=N)` that is a checkpoint every N optimizer steps
    (meta-updates). What is saved: every variable of the model
    (`model.variables`: weights, BatchNorm statistics, Dropout seed-generator
    state, a learner's learned inner learning rates) and of its optimizer
    (slots and `iterations`, the step counter). Checkpoints are named
    `ckpt-<step>` after the optimizer step they hold.

    Writes are atomic: `tf.train.CheckpointManager` writes a checkpoint's
    data and index files first and then replaces the `checkpoint` state file
    that names the latest complete checkpoint. A process killed at any moment
    therefore leaves that file naming a complete checkpoint; files of an
    unfinished save are never named, and the next save of that step
    overwrites them. Variables holding NaN or Inf are never written
    (`FloatingPointError`).

    On `on_train_begin` the latest checkpoint, if any, is restored into the
    model and its optimizer (whose variables are built first if needed), so
    `fit` continues where the last complete checkpoint left off. The data and
    `initial_epoch` must continue from there too: read the step with
    `latest_step(directory)` before calling `fit`. A checkpoint that does not
    match the model variable for variable raises a `ValueError`.

    Place it after callbacks that record the epoch (`CSVLogger`,
    `TensorBoard`): a checkpoint then always comes after the records of the
    epochs it holds, so a resumed run can drop any record newer than its
    checkpoint.

    Args:
        directory: the checkpoint folder (created when needed).
        max_to_keep: how many of the latest checkpoints to keep.

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
        self.directory = os.fspath(directory)
        self.max_to_keep = max_to_keep
        self.saved_step = -1  # the step of the last checkpoint written or restored
        self._manager: tf.train.CheckpointManager | None = None

    def _variables(self) -> list:
        return list(self.model.variables) + list(self.model.optimizer.variables)

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if not optimizer.built:  # Keras builds it lazily, at the first update, for some models.
            optimizer.build(self.model.trainable_variables)
        checkpoint = tf.train.Checkpoint(
            model_variables=list(self.model.variables),
            optimizer_variables=list(optimizer.variables),
        )
        self._manager = tf.train.CheckpointManager(
            checkpoint, self.directory, max_to_keep=self.max_to_keep, checkpoint_name=_PREFIX
        )
        path = self._manager.latest_checkpoint
        if path is not None:
            self._restore(checkpoint, path)
            self.saved_step = self._step()

    def _restore(self, checkpoint: tf.train.Checkpoint, path: str) -> None:
        stored = {
            tuple(name.split("/")[:2])
            for name, _ in tf.train.list_variables(path)
            if name.split("/")[0] in _GROUPS
        }
        expected = len(self._variables())
        try:
            if len(stored) != expected:
                raise ValueError(f"it holds {len(stored)} variables, the model {expected}")
            checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError) as error:
            raise ValueError(
                f"the checkpoint {path} does not match this model and optimizer (was it "
                f"written with other settings?): {str(error).splitlines()[0]}"
            ) from error

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def save(self) -> str:
        """Writes a checkpoint of the current step; returns its path prefix."""
        step = self._step()
        check_finite(self._variables(), f"checkpoint of step {step}")
        path = self._manager.save(checkpoint_number=step)
        self.saved_step = step
        return path
