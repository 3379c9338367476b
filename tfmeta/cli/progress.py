"""`ProgressLine`: a compact line every few seconds while `tfmeta train` runs.

Keras's progress bar needs a terminal and `verbose=2` prints once per epoch
(500 meta-updates, minutes apart). This callback prints, every
`every_seconds`, the step, the epoch's running metrics, the throughput in
tasks (or images) per second over the last interval and the time left at the
rate measured since the first step (compiling the first step is excluded),
and at every epoch end the epoch's metrics, validation ones included.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

import keras


def duration(seconds: float) -> str:
    """`3h05m`, `4m09s` or `12s`."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def metrics_text(logs: dict | None) -> str:
    """`loss 0.412, accuracy 0.8125` for the scalar entries of Keras logs."""
    parts = []
    for name, value in (logs or {}).items():
        try:
            parts.append(f"{name} {float(value):.4g}")
        except (TypeError, ValueError):
            continue
    return ", ".join(parts)


class ProgressLine(keras.callbacks.Callback):
    """Prints progress lines while `fit` runs (see the module docstring).

    Args:
        total_steps: the steps (meta-updates) of the whole run.
        steps_per_epoch: steps per epoch.
        items_per_step: tasks (or images) each step processes.
        every_seconds: seconds between lines.
        items: what `items_per_step` counts, for the line ("tasks", "images").
        stream: where to print (default: stdout, flushed at each line).

    Example:

    ```python
    learner.fit(episodes, steps_per_epoch=500, epochs=20, verbose=0,
                callbacks=[ProgressLine(10_000, 500, items_per_step=32)])
    # tfmeta: 1220/10000 meta-updates (epoch 3/20): loss 0.51; 61.2 tasks/s, ETA 2m18s
    ```
    """

    def __init__(
        self,
        total_steps: int,
        steps_per_epoch: int,
        items_per_step: int,
        every_seconds: float = 10.0,
        items: str = "tasks",
        step_name: str = "meta-updates",
        stream: TextIO | None = None,
    ):
        super().__init__()
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.items_per_step = items_per_step
        self.every_seconds = every_seconds
        self.items = items
        self.step_name = step_name
        self.stream = stream
        self._step: int | None = None  # set by the first epoch of the call (it may resume)
        self._first: tuple[float, int] | None = None
        self._last = (0.0, 0)

    def _print(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(f"tfmeta: {text}\n")
        stream.flush()

    def on_train_begin(self, logs=None):
        self._step = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._step is None:
            self._step = epoch * self.steps_per_epoch
            self._first = None

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        now = time.monotonic()
        if self._first is None:  # after the first step, which also compiled
            self._first = self._last = (now, self._step)
            return
        if now - self._last[0] < self.every_seconds:
            return
        rate = (self._step - self._last[1]) / (now - self._last[0]) * self.items_per_step
        steps_per_second = (self._step - self._first[1]) / (now - self._first[0])
        eta = (self.total_steps - self._step) / steps_per_second if steps_per_second else math.inf
        self._last = (now, self._step)
        epochs = -(-self.total_steps // self.steps_per_epoch)
        self._print(
            f"{self._step}/{self.total_steps} {self.step_name} (epoch {self._epoch + 1}/{epochs})"
            f": {metrics_text(logs)}; {rate:.1f} {self.items}/s, ETA {duration(eta)}"
        )

    def on_epoch_end(self, epoch, logs=None):
        epochs = -(-self.total_steps // self.steps_per_epoch)
        self._print(f"epoch {epoch + 1}/{epochs} done: {metrics_text(logs)}")
