"""Prototypical Networks (Snell et al. 2017): nearest class mean in a learned embedding."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.data import episode as episode_lib
from tfmeta.learners import base


@keras.saving.register_keras_serializable(package="tfmeta")
class ProtoNet(base.MetaLearner):
    """Prototypical Networks: classify queries by their distance to class prototypes.

    The wrapped model embeds images; a class's prototype is the mean
    embedding of its support examples, and the logit of a query for class
    `n` is the negative squared Euclidean distance to prototype `n`.
    Meta-training minimises the compiled loss (use
    `SparseCategoricalCrossentropy(from_logits=True)`) of the query logits
    over the embedding's weights. There is no inner loop; support and query
    are embedded in one batch (so BatchNorm in meta-training normalises with
    the statistics of both, as in the authors' code), and there is no
    pre-adaptation loss.

    Support labels must be the class ids `0..N-1` (as `tfmeta.data` episodes
    are). Predictions have shape `[Q, N]`. With `ways=N`, an episode may hold
    fewer classes than N: the logits of classes without support examples
    are a large negative number, so they never win and add nothing to the
    loss.

    Padded episodes (`tfmeta.data.variable_episodes`: varying ways and shots,
    `support_mask` and `query_mask`) need `ways=N` with N at least their
    largest way count. Only the real examples are embedded (so BatchNorm's
    batch statistics are those of the unpadded episode), the loss and the
    compiled metrics count only real queries, and the predictions of padded
    queries are zeros: the results equal those of the unpadded episode, in
    one trace for every episode shape.

    Args:
        model: a built Keras model mapping inputs to embeddings `[batch, D]`
            (any rank: embeddings are flattened), e.g.
            `tfmeta.models.conv4(num_classes=None)`.
        ways: the number of classes N of every episode; None infers it per
            episode as `max(support_y) + 1` (then meta-training with more
            ways than evaluation, as Snell et al. do, needs nothing else).
        query_statistics: which statistics BatchNorm normalises the episode
            with (`tfmeta.query_statistics`). Default `"moving"`: evaluation
            in inference mode, as in the paper; `"support"`: the support set's
            statistics, in meta-training too; `"transductive"`: evaluation
            with the statistics of support and queries together.
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    import keras, tfmeta
    embedding = tfmeta.models.conv4((28, 28, 1), num_classes=None)
    protonet = tfmeta.ProtoNet(embedding)
    protonet.compile(optimizer=keras.optimizers.Adam(1e-3),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
    sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    protonet.fit(sources["train"].episodes(ways=60, shots=1, queries=5, meta_batch_size=1,
                                           seed=0), steps_per_epoch=1000)
    test = sources["test"].episodes(ways=5, shots=1, queries=15, meta_batch_size=20,
                                    num_episodes=600, seed=1)
    tfmeta.evaluation.evaluate_episodes(protonet, test)  # {"accuracy": ..., "ci95": ...}
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        ways: int | None = None,
        query_statistics: str = query_statistics_lib.MOVING,
        **kwargs,
    ):
        super().__init__(model, query_statistics=query_statistics, **kwargs)
        if ways is not None and (isinstance(ways, bool) or not isinstance(ways, int) or ways < 1):
            raise ValueError(
                f"Expected `ways` to be None or an integer >= 1. Received: ways={ways!r}"
            )
        self.ways = ways

    accepts_padded_episodes = True

    def checked_episodes(self, episodes):
        """As `MetaLearner.checked_episodes`; padded episodes need `ways=N` (a fixed logit count)."""
        if self.ways is None and any(key in episodes for key in episode_lib.MASK_KEYS):
            raise ValueError(
                "Expected ProtoNet(ways=N) for padded episodes (N >= their largest way count: "
                "every task of a meta-batch predicts N scores). Received: ways=None"
            )
        return super().checked_episodes(episodes)

    def adapt_and_predict(self, task, state, training):
        params, _ = adaptation.initial_weights(self.model)
        support_x, support_y = task[episode_lib.SUPPORT_X], task[episode_lib.SUPPORT_Y]
        query_x = task[episode_lib.QUERY_X]
        padded = episode_lib.QUERY_MASK in task
        if padded:  # Embed the real examples only.
            support_rows = tf.where(task[episode_lib.SUPPORT_MASK])[:, 0]
            query_rows = tf.where(task[episode_lib.QUERY_MASK])[:, 0]
            support_x, support_y = (tf.gather(t, support_rows) for t in (support_x, support_y))
            query_x = tf.gather(query_x, query_rows)
        support, queries, model_state = query_statistics_lib.episode_forward(
            self.model,
            params,
            self.model_state(state),
            support_x,
            query_x,
            mode=self.query_statistics,
            training=training,
        )
        logits = self.query_logits(_flatten(support), support_y, _flatten(queries), training)
        if self.ways is not None:
            logits = _without_absent_classes(logits, support_y, self.ways)
        if padded:
            rows = tf.shape(task[episode_lib.QUERY_X], out_type=tf.int64)[0]
            logits = tf.scatter_nd(
                query_rows[:, tf.newaxis], logits, tf.stack([rows, tf.shape(logits, tf.int64)[1]])
            )
        return logits, model_state

    def query_logits(
        self,
        support_embeddings: tf.Tensor,
        support_y: tf.Tensor,
        query_embeddings: tf.Tensor,
        training: bool,
    ) -> tf.Tensor:
        """The class scores `[Q, N]` of the queries: minus their squared distances to the prototypes.

        Subclasses classify the embedded task another way (`ProtoMAML`).
        """
        del training
        prototypes = self.prototypes(support_embeddings, support_y)
        return _squared_distance_logits(query_embeddings, prototypes)

    def prototypes(self, support_embeddings: tf.Tensor, support_y: tf.Tensor) -> tf.Tensor:
        """The mean embedding of each class: `[N, D]` from `[S, D]` embeddings and labels."""
        labels = tf.cast(tf.reshape(support_y, [-1]), tf.int32)
        ways = self.ways if self.ways is not None else tf.reduce_max(labels) + 1
        return tf.math.unsorted_segment_mean(support_embeddings, labels, ways)

    def predict_without_adaptation(self, task, state):
        return None

    def xla_unsupported(self) -> str | None:
        if self.ways is None:
            return (
                "ways=None infers the number of prototypes from each episode's labels, a shape "
                "XLA must know when it compiles; pass ways=N (every episode N-way)"
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


def _flatten(embeddings: tf.Tensor) -> tf.Tensor:
    return tf.reshape(embeddings, [tf.shape(embeddings)[0], -1])


# The logit of a class without support examples: exp() of it vanishes next to any real logit.
ABSENT_CLASS_LOGIT = -1e30


def _without_absent_classes(logits: tf.Tensor, support_y: tf.Tensor, ways: int) -> tf.Tensor:
    """`logits` (`[Q, ways]`) with classes that have no support example set to `ABSENT_CLASS_LOGIT`."""
    labels = tf.cast(tf.reshape(support_y, [-1]), tf.int32)
    present = tf.math.unsorted_segment_max(tf.ones_like(labels), labels, ways) > 0
    return tf.where(present[tf.newaxis], logits, tf.cast(ABSENT_CLASS_LOGIT, logits.dtype))


def _squared_distance_logits(queries: tf.Tensor, prototypes: tf.Tensor) -> tf.Tensor:
    """`-||q - c||^2` for every query `q` (`[Q, D]`) and prototype `c` (`[N, D]`): `[Q, N]`."""
    differences = queries[:, tf.newaxis, :] - prototypes[tf.newaxis, :, :]
    return -tf.reduce_sum(tf.square(differences), axis=-1)
