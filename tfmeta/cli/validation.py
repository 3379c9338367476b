"""Validation while `tfmeta train` runs: `val_*` metrics every epoch, and the best learner kept.

`EpisodeValidation` evaluates the learner on a fixed set of validation tasks
at every epoch end and adds `val_<metric>` to the epoch's logs (so
`history.csv`, TensorBoard and the progress lines show them). It works for
any `fit` (the fine-tuning baseline pretrains another model), unlike
`fit(validation_data=...)`. `KeepBest` saves the learner whenever the
monitored validation metric improves; a resumed run continues from the best
value its `history.csv` holds.
"""

from __future__ import annotations

import math
import pathlib
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfmeta.argument_validation import check_choice

MODES = ("max", "min")


class EpisodeValidation(keras.callbacks.Callback):
    """Adds `val_<metric>` of `learner.evaluate(episodes)` to the logs of every epoch.

    Place it before the callbacks that read the epoch's logs.

    Args:
        learner: the compiled learner to evaluate (not necessarily the model
            `fit` trains).
        episodes: a finite dataset of validation meta-batches, the same every epoch.

    Example:

    ```python
    validation = sources["validation"].episodes(5, 1, 15, num_episodes=100, seed=2).batch(25)
    maml.fit(train, steps_per_epoch=500, epochs=20, callbacks=[EpisodeValidation(maml, validation)])
    ```
    """

    def __init__(self, learner: keras.Model, episodes: tf.data.Dataset):
        super().__init__()
        self.learner = learner
        self.episodes = episodes

    def on_epoch_end(self, epoch, logs=None):
        results = self.learner.evaluate(self.episodes, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"val_{name}": float(value) for name, value in results.items()})


class KeepBest(keras.callbacks.Callback):
    """Calls `save()` at each epoch end whose `monitor` value beats the best so far.

    Args:
        monitor: the log entry to compare, e.g. `"val_accuracy"`.
        mode: `"max"` (higher is better) or `"min"`.
        save: writes the current learner (atomically).
        best: the best value of earlier epochs (a resumed run), if any.
        best_epoch: its epoch (0-based).
    """

    def __init__(
        self,
        monitor: str,
        mode: str,
        save: Callable[[], None],
        best: float | None = None,
        best_epoch: int | None = None,
    ):
        super().__init__()
        self.monitor = monitor
        self.mode = check_choice("mode", mode, MODES)
        self.save = save
        self.best = best
        self.best_epoch = best_epoch

    def improves(self, value: float) -> bool:
        """Whether `value` is finite and better than the best so far."""
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and self.improves(float(value)):
            self.save()
            self.best, self.best_epoch = float(value), epoch


def best_in_history(
    history: pathlib.Path, monitor: str, mode: str
) -> tuple[float, int] | tuple[None, None]:
    """The best finite `monitor` value of a `CSVLogger` file and its epoch, or `(None, None)`."""
    if not history.is_file() or not history.stat().st_size:
        return None, None
    rows = np.genfromtxt(history, delimiter=",", names=True, ndmin=1)
    if monitor not in (rows.dtype.names or ()):
        return None, None
    values = np.asarray(rows[monitor], np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    if not len(finite):
        return None, None
    pick = finite[np.argmax(values[finite]) if mode == "max" else np.argmin(values[finite])]
    return float(values[pick]), int(rows["epoch"][pick])
