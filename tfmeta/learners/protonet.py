"""Prototypical Networks (Snell et al. 2017): nearest class mean in a learned embedding."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta.learners import n_way
from tfmeta.learners.n_way import flatten


@keras.saving.register_keras_serializable(package="tfmeta")
class ProtoNet(n_way.NWayClassifier):
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

    _inferred_from_labels = "the number of prototypes"

    def head(self, support, support_y, queries, ways, state, training):
        logits = self.query_logits(flatten(support), support_y, flatten(queries), ways, training)
        return logits, state

    def query_logits(
        self,
        support_embeddings: tf.Tensor,
        support_y: tf.Tensor,
        query_embeddings: tf.Tensor,
        ways: int | tf.Tensor,
        training: bool,
    ) -> tf.Tensor:
        """The class scores `[Q, ways]` of the queries: minus their squared distances to prototypes.

        Subclasses classify the embedded task another way (`ProtoMAML`).
        """
        del training
        prototypes = self.prototypes(support_embeddings, support_y, ways)
        return _squared_distance_logits(query_embeddings, prototypes)

    def prototypes(
        self,
        support_embeddings: tf.Tensor,
        support_y: tf.Tensor,
        ways: int | tf.Tensor | None = None,
    ) -> tf.Tensor:
        """The mean embedding of each class: `[N, D]` from `[S, D]` embeddings and labels.

        `ways` defaults to the learner's, or `max(support_y) + 1` with `ways=None`.
        """
        labels = tf.cast(tf.reshape(support_y, [-1]), tf.int32)
        if ways is None:
            ways = self.ways if self.ways is not None else tf.reduce_max(labels) + 1
        return tf.math.unsorted_segment_mean(support_embeddings, labels, ways)


def _squared_distance_logits(queries: tf.Tensor, prototypes: tf.Tensor) -> tf.Tensor:
    """`-||q - c||^2` for every query `q` (`[Q, D]`) and prototype `c` (`[N, D]`): `[Q, N]`."""
    differences = queries[:, tf.newaxis, :] - prototypes[tf.newaxis, :, :]
    return -tf.reduce_sum(tf.square(differences), axis=-1)
