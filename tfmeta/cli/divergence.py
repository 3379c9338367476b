"""The non-finite loss policy of `tfmeta train`: stop at the first NaN or Inf meta-loss."""

from __future__ import annotations

import math

import keras


class TrainingDiverged(FloatingPointError):
    """Training produced a NaN or Inf loss, or weights that cannot be saved."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `TrainingDiverged` after the first training step whose loss is NaN or Inf.

    Unlike `keras.callbacks.TerminateOnNaN`, which ends `fit` as if training
    had finished, this raises, so the caller cannot mistake a diverged run
    for a finished one. Place it before checkpointing callbacks: the step
    that diverged is then never saved.

    Example:

    ```python
    learner.fit(episodes, steps_per_epoch=100, callbacks=[StopOnNonFiniteLoss()])
    ```
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(self.model.optimizer.iterations.numpy())
            raise TrainingDiverged(f"the training loss became {float(loss)} at step {step}")
