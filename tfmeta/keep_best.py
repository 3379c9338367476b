"""`KeepBest`: a Keras callback that saves what a run keeps when an epoch's monitored log improves.

`tfmeta train` keeps its best validated learner with it (`best.keras`), and
a meta-RL run its best training epoch's policy (`tfmeta.rl.training.BestPolicy`).
"""

from __future__ import annotations

import math
from typing import Callable

import keras

from tfmeta.argument_validation import check_choice

MODES = ("max", "min")


class KeepBest(keras.callbacks.Callback):
    """Calls `save(epoch, value)` at each epoch end whose `monitor` value beats the best so far.

    NaN and infinite values never count as best.

    Args:
        monitor: the log entry to compare, e.g. `"val_accuracy"`.
        mode: `"max"` (higher is better) or `"min"`.
        save: writes what is kept (atomically); called with the epoch (0-based)
            and its value, before they become `best_epoch` and `best`.
        best: the best value of earlier epochs (a resumed run), if any.
        best_epoch: its epoch (0-based).
        required: an epoch whose logs lack `monitor` raises a `ValueError`
            (else it is skipped, e.g. a run that does not validate).
    """

    def __init__(
        self,
        monitor: str,
        mode: str,
        save: Callable[[int, float], None],
        best: float | None = None,
        best_epoch: int | None = None,
        required: bool = False,
    ):
        super().__init__()
        self.monitor = monitor
        self.mode = check_choice("mode", mode, MODES)
        self.save = save
        self.best = best
        self.best_epoch = best_epoch
        self.required = required

    def improves(self, value: float) -> bool:
        """Whether `value` is finite and better than the best so far."""
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            if self.required:
                raise ValueError(
                    f"Expected the epoch's logs to hold {self.monitor!r} (the monitored value). "
                    f"Received: {sorted(logs)}"
                )
            return
        value = float(logs[self.monitor])
        if self.improves(value):
            self.save(epoch, value)
            self.best, self.best_epoch = value, epoch
