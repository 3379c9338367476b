"""`SupportSetClassifier`: learners that classify queries from a support set in one forward pass.

R2-D2, Matching Networks and Relation Networks (like Prototypical Networks)
have no inner loop: the wrapped model embeds support set and queries in one
pass (`tfmeta.query_statistics.episode_forward`, so every `query_statistics`
mode applies), and a head maps the support embeddings, their labels and the
query embeddings straight to query scores. Adaptation is a forward pass, so
it costs what inference costs, in meta-training, in a server and on a phone.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.data import episode as episode_lib
from tfmeta.learners import base


def check_ways(ways) -> int | None:
    """Returns `ways` unless it is neither None nor an integer >= 1."""
    if ways is not None and (isinstance(ways, bool) or not isinstance(ways, int) or ways < 1):
        raise ValueError(f"Expected `ways` to be None or an integer >= 1. Received: ways={ways!r}")
    return ways


def flatten(embeddings: tf.Tensor) -> tf.Tensor:
    """`[n, ...]` embeddings as `[n, D]` rows."""
    return tf.reshape(embeddings, [tf.shape(embeddings)[0], -1])


class SupportSetClassifier(base.MetaLearner):
    """Base class of the one-pass classifiers: embeds an episode, then scores queries by a head.

    Subclasses implement `head`. Support labels must be the class ids
    `0..N-1` (as `tfmeta.data` episodes are); predictions are query scores
    `[Q, N]` (the largest wins). There is no pre-adaptation loss.

    Args:
        model: a built Keras model mapping inputs to embeddings (any rank).
        ways: the classes N of every episode, each of which must have a
            support example (checked in the graph); None infers N per episode
            as `max(support_y) + 1`, so meta-training may use more ways than
            evaluation (not under XLA).
        query_statistics: how BatchNorm normalises the episode
            (`tfmeta.query_statistics`); default `"moving"`, as the papers
            evaluate.
        **kwargs: forwarded to `tfmeta.MetaLearner`.
    """

    def __init__(
        self,
        model: keras.Model,
        ways: int | None = None,
        query_statistics: str = query_statistics_lib.MOVING,
        **kwargs,
    ):
        super().__init__(model, query_statistics=query_statistics, **kwargs)
        self.ways = check_ways(ways)

    def head(
        self,
        support: tf.Tensor,
        support_y: tf.Tensor,
        queries: tf.Tensor,
        ways: int | tf.Tensor,
        state: adaptation.Weights,
        training: bool,
    ) -> tuple[tf.Tensor, adaptation.Weights]:
        """Query scores `[Q, ways]` from embeddings; `state` is the learner's own state.

        Args:
            support: support embeddings as the model returns them `[S, ...]`.
            support_y: int class ids `[S]`.
            queries: query embeddings `[Q, ...]`.
            ways: the number of classes.
            state: values of the learner's own state variables (those after
                the wrapped model's in `state_variables`).
            training: meta-training or evaluation.

        Returns:
            `(scores, new_state)`.
        """
        raise NotImplementedError

    def adapt_and_predict(self, task, state, training):
        params, _ = adaptation.initial_weights(self.model)
        support, queries, model_state = query_statistics_lib.episode_forward(
            self.model,
            params,
            self.model_state(state),
            task[episode_lib.SUPPORT_X],
            task[episode_lib.QUERY_X],
            mode=self.query_statistics,
            training=training,
        )
        labels = self.checked_labels(task[episode_lib.SUPPORT_Y])
        ways = self.ways if self.ways is not None else tf.reduce_max(labels) + 1
        scores, own_state = self.head(
            support, labels, queries, ways, list(state[len(model_state):]), training
        )
        return scores, list(model_state) + list(own_state)

    def checked_labels(self, support_y: tf.Tensor) -> tf.Tensor:
        """`support_y` as int32 `[S]`; with `ways` set, checked in the graph to hold every class.

        (With `ways=None` the meta-batch checks already require every class
        below the largest.)
        """
        labels = tf.cast(tf.reshape(support_y, [-1]), tf.int32)
        if self.ways is None:
            return labels
        present = tf.reduce_max(tf.one_hot(labels, self.ways), axis=0) > 0
        check = tf.debugging.Assert(
            tf.reduce_all(present),
            [f"Expected a support example of every class 0..{self.ways - 1} in `support_y` "
             f"({type(self).__name__} with ways={self.ways}). Received: a support set missing a "
             "class; build episodes of `ways` classes, or pass ways=None"],
        )
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    def predict_without_adaptation(self, task, state):
        return None  # nothing to predict before the support set is seen

    def xla_unsupported(self) -> str | None:
        if self.ways is None:
            return (
                "ways=None infers the number of classes from each episode's labels, a shape "
                "XLA must know when it compiles; pass ways=N (every episode N-way)"
            )
        return None

    def _fused_batch_norm_is_exact(self, training: bool) -> bool:
        # One backward pass through the embedding, as for Prototypical Networks.
        return True

    def _prediction_spec(self, episodes):
        query_x = episodes[episode_lib.QUERY_X]
        dtype = self.model.compute_output_spec(
            keras.KerasTensor(query_x.shape[1:], dtype=query_x.dtype.name)
        ).dtype
        return tf.TensorSpec([query_x.shape[1], self.ways], dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(ways=self.ways)
        return config
