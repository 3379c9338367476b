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
    are). Predictions have shape `[Q, N]`.

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
        prototypes = self.prototypes(_flatten(support), task[episode_lib.SUPPORT_Y])
        return _squared_distance_logits(_flatten(queries), prototypes), model_state

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


def _squared_distance_logits(queries: tf.Tensor, prototypes: tf.Tensor) -> tf.Tensor:
    """`-||q - c||^2` for every query `q` (`[Q, D]`) and prototype `c` (`[N, D]`): `[Q, N]`."""
    differences = queries[:, tf.newaxis, :] - prototypes[tf.newaxis, :, :]
    return -tf.reduce_sum(tf.square(differences), axis=-1)
