"""`StepSummaries`: TensorBoard summaries between epochs while `tfmeta train` runs (`logs/steps`).

Keras's `TensorBoard` callback writes once per epoch (and its per-batch mode
numbers steps from 0 again after a resume). This one writes, at every
`every`-th meta-update counted from the start of the run:

- `train/<metric>`: the epoch's running training metrics so far;
- `tasks_per_second` (`images_per_second` when pretraining);
- `probe/loss_before_adaptation`, `probe/loss_after_adaptation`,
  `probe/accuracy_before_adaptation`, `probe/accuracy_after_adaptation`: a
  fixed meta-batch of held-out tasks (validation tasks when there are any),
  adapted with the evaluation inner loop. It only monitors: nothing is
  selected on it, and the learner's variables are untouched;

and images: the probe's first episode (support and query images) once, and
for the sinusoid the adapted curves of three probe tasks at every epoch end
(with the `plot` extra).
"""

from __future__ import annotations

import io
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from tfmeta import evaluation
from tfmeta.data import episode as episode_lib


class StepSummaries(keras.callbacks.Callback):
    """Writes the summaries above (see the module docstring).

    Args:
        learner: the learner whose adaptation the probe measures.
        log_dir: where the event files go (a `steps/` folder of the run's `logs/`).
        every: meta-updates between summaries.
        steps_per_epoch: steps per epoch (to number steps across a resume).
        items_per_step: tasks (or images) per step, for the throughput.
        probe: a meta-batch of held-out tasks.
        items: what `items_per_step` counts.
        draw_adaptation: draw adapted sinusoid curves at every epoch end.
    """

    def __init__(
        self,
        learner: keras.Model,
        log_dir: str | pathlib.Path,
        every: int,
        steps_per_epoch: int,
        items_per_step: int,
        probe: dict[str, tf.Tensor],
        items: str = "tasks",
        draw_adaptation: bool = False,
    ):
        super().__init__()
        self.learner = learner
        self.log_dir = str(log_dir)
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.items_per_step = items_per_step
        self.probe = learner.checked_episodes(probe) | {
            key: value for key, value in probe.items() if key not in episode_lib.EPISODE_KEYS
        }
        self.items = items
        self.draw_adaptation = draw_adaptation
        self._scores = tf.function(learner.query_scores)
        self._writer: tf.summary.SummaryWriter | None = None
        self._step: int | None = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)
        self._step = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._step is None:
            self._step = epoch * self.steps_per_epoch
            self._last = (time.monotonic(), self._step)
            self._write_episode_images()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every:
            return
        now = time.monotonic()
        with self._writer.as_default(step=self._step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"train/{name}", float(value))
            if self._step > self._last[1] and now > self._last[0]:
                rate = (self._step - self._last[1]) / (now - self._last[0]) * self.items_per_step
                tf.summary.scalar(f"{self.items}_per_second", rate)
            for name, value in self.probe_scores().items():
                tf.summary.scalar(f"probe/{name}", value)
        self._writer.flush()
        self._last = (time.monotonic(), self._step)  # the probe's time is not training time

    def on_epoch_end(self, epoch, logs=None):
        if self.draw_adaptation:
            self._write_adaptation_curves()

    def on_train_end(self, logs=None):
        self._writer.close()

    def probe_scores(self) -> dict[str, float]:
        """Mean query loss and accuracy of the probe tasks, before and after adaptation."""
        scores = {key: np.asarray(value) for key, value in self._scores(self.probe).items()}
        targets = np.asarray(self.probe[episode_lib.QUERY_Y])
        result = {}
        for when, prefix in (("after", ""), ("before", "pre_adaptation_")):
            if f"{prefix}loss" not in scores:
                continue
            result[f"loss_{when}_adaptation"] = float(scores[f"{prefix}loss"].mean())
            predictions = scores[f"{prefix}predictions"]
            if evaluation.is_classification(targets[0], predictions[0]):
                result[f"accuracy_{when}_adaptation"] = float(np.mean(
                    [evaluation.accuracy(t, p) for t, p in zip(targets, predictions)]
                ))
        return result

    def _write_episode_images(self) -> None:
        support_x = self.probe[episode_lib.SUPPORT_X]
        if support_x.shape.rank != 5:  # not images
            return
        with self._writer.as_default(step=self._step):
            for key in (episode_lib.SUPPORT_X, episode_lib.QUERY_X):
                images = self.probe[key][0]
                tf.summary.image(
                    f"probe_episode/{key}", images, max_outputs=int(images.shape[0]),
                    description="the first probe task, grouped by class",
                )
        self._writer.flush()

    def _write_adaptation_curves(self) -> None:
        try:
            from tfmeta import plots

            png = io.BytesIO()
            plots.plot_sinusoid_adaptation(self.learner, self.probe, png)
        except ImportError:  # no matplotlib: no curves
            return
        image = tf.io.decode_png(png.getvalue(), channels=3)[tf.newaxis]
        with self._writer.as_default(step=self._step):
            tf.summary.image("adaptation", image, description="adapted sinusoid curves")
        self._writer.flush()
