"""`NWayClassifier`: the shared base of the one-pass N-way classifiers.

Prototypical Networks, R2-D2, Matching Networks and Relation Networks embed a
task's support set and queries in one forward pass
(`tfmeta.query_statistics.episode_forward`) and score the queries with a head
over the support embeddings and labels. This base holds what they share: the
`ways` argument, the forward pass, classes without support examples, and
padded episodes (`tfmeta.data.variable_episodes`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.argument_validation import check_integer
from tfmeta.data import episode as episode_lib
from tfmeta.learners import base, padded_episodes
from tfmeta.learners.padded_episodes import without_absent_classes


def check_ways(ways: object) -> int | None:
    """Returns `ways` unless it is neither None nor an integer >= 1."""
    return check_integer("ways", ways, allow_none=True)


def flatten(embeddings: tf.Tensor) -> tf.Tensor:
    """`[n, ...]` embeddings as `[n, D]` rows."""
    return tf.reshape(embeddings, [tf.shape(embeddings)[0], -1])


class NWayClassifier(base.MetaLearner):
    """Base class of the one-pass classifiers: embeds an episode, then scores queries by a head.

    Subclasses implement `head`. Support labels must be the class ids
    `0..N-1` (as `tfmeta.data` episodes are); predictions are query scores
    `[Q, N]` (the largest wins). There is no pre-adaptation loss.

    With `ways=N`, classes without support examples score
    `padded_episodes.ABSENT_CLASS_LOGIT` (-1e30), so they never win (subclasses may refuse such
    episodes in `checked_labels`). Padded episodes (`support_mask`,
    `query_mask`) need `ways=N`, N at least their largest way count: only the
    real examples are embedded (BatchNorm's batch statistics are those of the
    unpadded episode), the head scores the episode's own classes
    `0..max(support_y)`, the other classes score `ABSENT_CLASS_LOGIT`, and
    padded queries score zeros; the loss and metrics count real queries only.
    The results equal those of the unpadded episode, in one trace for every
    episode shape.
    """

    accepts_padded_episodes = True
    # What `ways=None` infers per episode (named when XLA is refused).
    _inferred_from_labels = "the number of classes"

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

    def checked_labels(self, support_y: tf.Tensor, padded: bool) -> tf.Tensor:
        """`support_y` as int32 `[S]`; subclasses add in-graph checks of the classes present."""
        del padded
        return tf.cast(tf.reshape(support_y, [-1]), tf.int32)

    def checked_episodes(self, episodes):
        """As `MetaLearner.checked_episodes`; padded episodes need `ways=N` (fixed score count)."""
        if self.ways is None and any(key in episodes for key in episode_lib.MASK_KEYS):
            raise ValueError(
                f"Expected {type(self).__name__}(ways=N) for padded episodes (N >= their largest "
                "way count: every task of a meta-batch predicts N scores). Received: ways=None"
            )
        return super().checked_episodes(episodes)

    def adapt_and_predict(self, task, state, training):
        real = padded_episodes.real_examples(task)  # Embed the real examples only.
        params, _ = adaptation.initial_weights(self.model)
        support, queries, model_state = query_statistics_lib.episode_forward(
            self.model, params, self.model_state(state), real.task[episode_lib.SUPPORT_X],
            real.task[episode_lib.QUERY_X], mode=self.query_statistics, training=training,
        )
        labels = self.checked_labels(real.task[episode_lib.SUPPORT_Y], real.padded)
        scores, own_state = self.head(
            support, labels, queries, self._head_ways(labels, real.padded),
            list(state[len(model_state):]), training,
        )
        if real.padded:  # Widen the episode's own classes to N.
            scores = tf.pad(scores, [[0, 0], [0, self.ways - tf.shape(scores)[1]]])
        if self.ways is not None:
            scores = without_absent_classes(scores, labels)
        return real.in_padded_rows(scores), list(model_state) + list(own_state)

    def _head_ways(self, labels: tf.Tensor, padded: bool) -> int | tf.Tensor:
        """`ways`, or the episode's own `max(labels) + 1` when inferred or padded.

        A padded episode's head sees only its own classes, so what the head
        normalises or averages over classes is as in the unpadded episode.
        """
        if self.ways is not None and not padded:
            return self.ways
        return tf.reduce_max(labels) + 1

    def predict_without_adaptation(self, task, state):
        return None  # nothing to predict before the support set is seen

    def xla_unsupported(self) -> str | None:
        if self.ways is None:
            return (
                f"ways=None infers {self._inferred_from_labels} from each episode's labels, a "
                "shape XLA must know when it compiles; pass ways=N (every episode N-way)"
            )
        return None

    def _fused_batch_norm_is_exact(self, training: bool) -> bool:
        # One backward pass through the embedding, with batch statistics in training.
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
