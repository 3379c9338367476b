"""Validation while `tfmeta train` runs: `val_*` metrics every epoch, and the best learner kept.

`EpisodeValidation` evaluates the learner on a fixed set of validation tasks
at every epoch end and adds `val_<metric>` to the epoch's logs (so
`history.csv`, TensorBoard and the progress lines show them). It works for
any `fit` (the fine-tuning baseline pretrains another model), unlike
`fit(validation_data=...)`. `tfmeta.keep_best.KeepBest` saves the learner
whenever the monitored validation metric improves; a resumed run continues
from the best value its `history.csv` holds (`best_in_history`).
"""

from __future__ import annotations

import pathlib

import keras
import numpy as np
import tensorflow as tf


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
