"""Padded episodes for learners: a task's real examples, its classes, its padded query rows.

A padded episode (`tfmeta.data.variable_episodes`: varying ways and shots)
carries `support_mask` / `query_mask` saying which rows are real. A learner
that accepts it computes on the real rows only, so BatchNorm's batch
statistics are those of the unpadded episode; scores only the episode's
classes (those with a support example: the others get `ABSENT_CLASS_LOGIT`,
so they never win and add nothing to a softmax loss or its gradients); and
returns query predictions in the padded rows, zeros for padding, whose loss
`MetaLearner.query_loss` leaves out.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import tensorflow as tf

from tfmeta import adaptation
from tfmeta.data import episode as episode_lib

# The logit of a class without support examples: exp() of it vanishes next to any real logit.
ABSENT_CLASS_LOGIT = -1e30


def is_padded(task: Mapping[str, tf.Tensor]) -> bool:
    """Whether a task (or meta-batch) carries the masks of a padded episode."""
    return episode_lib.QUERY_MASK in task


def without_absent_classes(logits: tf.Tensor, support_y: tf.Tensor) -> tf.Tensor:
    """`logits` (`[..., N]`) with every class absent from `support_y` at `ABSENT_CLASS_LOGIT`.

    `support_y` holds class ids in `0..N-1` (`N` the logits' last dimension).
    """
    present = present_classes(support_y, tf.shape(logits)[-1])
    return tf.where(present, logits, tf.cast(ABSENT_CLASS_LOGIT, logits.dtype))


def present_classes(support_y: tf.Tensor, ways: int | tf.Tensor) -> tf.Tensor:
    """Whether each class `0..ways-1` has a support example: bool `[ways]`."""
    labels = tf.cast(tf.reshape(support_y, [-1]), tf.int32)
    return tf.math.unsorted_segment_max(tf.ones_like(labels), labels, ways) > 0


@dataclasses.dataclass(frozen=True)
class RealExamples:
    """One task's real examples, and the way back to its padded query rows.

    Attributes:
        task: the four episode tensors, real rows only (the task itself when
            it is not padded).
        query_rows: `[Q_real]` positions of the real queries among the padded
            ones; None for a task without padding.
        num_queries: the padded query count; None for a task without padding.
    """

    task: dict[str, tf.Tensor]
    query_rows: tf.Tensor | None = None
    num_queries: tf.Tensor | None = None

    @property
    def padded(self) -> bool:
        return self.query_rows is not None

    def classes_only(self, logits: tf.Tensor) -> tf.Tensor:
        """A padded task's logits over its own classes (`without_absent_classes`); else `logits`."""
        if not self.padded:
            return logits
        return without_absent_classes(logits, self.task[episode_lib.SUPPORT_Y])

    def loss_over_classes(self, loss: adaptation.LossFn) -> adaptation.LossFn:
        """`loss` of the logits `classes_only` keeps (the inner loop's support loss)."""
        if not self.padded:
            return loss
        return lambda y_true, logits: loss(y_true, self.classes_only(logits))

    def in_padded_rows(self, predictions: tf.Tensor) -> tf.Tensor:
        """Predictions of the real queries scattered into the padded rows (zeros elsewhere)."""
        if not self.padded:
            return predictions
        shape = tf.concat(
            [[self.num_queries], tf.shape(predictions, out_type=tf.int64)[1:]], axis=0
        )
        padded = tf.scatter_nd(self.query_rows[:, tf.newaxis], predictions, shape)
        padded.set_shape(tf.TensorShape([None]).concatenate(predictions.shape[1:]))
        return padded


def real_examples(task: Mapping[str, tf.Tensor]) -> RealExamples:
    """The real support examples and queries of one task (no task axis), with their labels."""
    if not is_padded(task):
        return RealExamples(dict(task))
    support_rows = tf.where(task[episode_lib.SUPPORT_MASK])[:, 0]
    query_rows = tf.where(task[episode_lib.QUERY_MASK])[:, 0]
    real = {
        episode_lib.SUPPORT_X: tf.gather(task[episode_lib.SUPPORT_X], support_rows),
        episode_lib.SUPPORT_Y: tf.gather(task[episode_lib.SUPPORT_Y], support_rows),
        episode_lib.QUERY_X: tf.gather(task[episode_lib.QUERY_X], query_rows),
        episode_lib.QUERY_Y: tf.gather(task[episode_lib.QUERY_Y], query_rows),
    }
    num_queries = tf.shape(task[episode_lib.QUERY_X], out_type=tf.int64)[0]
    return RealExamples(real, query_rows, num_queries)


def check_way_count(
    episodes: dict[str, tf.Tensor], prediction_spec: tf.TensorSpec, learner_name: str
) -> dict[str, tf.Tensor]:
    """Padded episodes that depend on an in-graph check of their way counts against the outputs.

    A learner whose predictions have `N` class scores handles episodes of at
    most `N` ways; the check names `N` and the largest way count received.
    It runs before the learner's other checks of the class ids, so a head
    too narrow fails with this message.

    Args:
        episodes: a meta-batch of padded episodes (`validate_meta_batch`).
        prediction_spec: the learner's spec of one task's query predictions.
        learner_name: named in the messages.

    Raises:
        ValueError: now, for targets that are not class ids (regression).
        tf.errors.InvalidArgumentError: when the check runs, for too many ways.
    """
    classes = episode_lib.class_count(episodes[episode_lib.QUERY_Y], prediction_spec)
    if not classes:
        raise ValueError(
            f"Expected class-id targets in padded episodes ({learner_name} scores the classes "
            f"of each episode). Received: query_y.shape={episodes[episode_lib.QUERY_Y].shape} "
            f"with predictions of shape {prediction_spec.shape}"
        )
    mask = episodes[episode_lib.SUPPORT_MASK]
    labels = tf.reshape(tf.cast(episodes[episode_lib.SUPPORT_Y], tf.int64), tf.shape(mask))
    largest = tf.reduce_max(tf.where(mask, labels, 0)) + 1
    message = tf.strings.format(
        f"Expected padded episodes of at most {classes} ways ({learner_name}'s model predicts "
        f"{classes} classes: give it at least as many outputs as the episodes' largest way "
        "count). Received: an episode of {} ways",
        largest,
    )
    check = tf.debugging.Assert(largest <= classes, [message])
    with tf.control_dependencies([check]):
        return {key: tf.identity(value) for key, value in episodes.items()}
