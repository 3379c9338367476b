"""Relation Networks (Sung et al. 2018): a learned comparison of class and query embeddings."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.learners import split_relation_module
from tfmeta.learners import support_set_classifier


def pairs(examples: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """Every (class, example) pair, concatenated on the last axis: `[E * N, ..., 2C]`.

    Row `e * N + n` holds class `n`'s embedding, then example `e`'s.
    """
    ways = tf.shape(classes)[0]
    repeated = tf.repeat(examples, ways, axis=0)
    tiled = tf.tile(classes, tf.concat([[tf.shape(examples)[0]],
                                        tf.ones([tf.rank(classes) - 1], tf.int32)], 0))
    return tf.concat([tiled, repeated], axis=-1)


@keras.saving.register_keras_serializable(package="tfmeta")
class RelationNetwork(support_set_classifier.SupportSetClassifier):
    """Relation Networks: a learned module scores each query against each class.

    A class's embedding is the sum of its support examples' embeddings (the
    paper's K-shot rule); the relation module scores the concatenation of a
    class's and a query's embeddings (feature maps or vectors) in `[0, 1]`.
    Predictions are the relation scores `[Q, N]`; the paper's loss regresses
    them to the one-hot labels (`tfmeta.losses.OneHotMeanSquaredError`).
    Each query is compared with the classes on its own, so predictions do
    not depend on the order of the support set.

    The relation module's BatchNorm layers follow `query_statistics` too: its
    "support" rows are the pairs of every support example with every class,
    so in `"support"` mode a query's scores depend only on the support set and
    that query.

    Padded episodes (`tfmeta.data.variable_episodes`) need `ways=N`, N at
    least their largest way count: the pairs are those of the real examples
    with the episode's own classes (so the relation module's BatchNorm
    statistics are those of the unpadded episode), the other classes score
    -1e30 (`SupportSetClassifier`), and `OneHotMeanSquaredError` leaves them
    out of its mean.

    Args:
        model: a built Keras model mapping inputs to embeddings, e.g. Conv-4
            without its pooling (`keras.Model(net.input,
            net.get_layer("block3_relu").output)`).
        relation_module: a built Keras model mapping a pair `(*feature_shape[:-1],
            2 * channels)` to a score `(1,)`, e.g.
            `tfmeta.models.relation_module(feature_shape)`.
        ways: the classes of every episode, or None (per episode); padded episodes
            need N.
        query_statistics: see `tfmeta.learners.support_set_classifier`.
        **kwargs: forwarded to `tfmeta.MetaLearner`.

    Example:

    ```python
    import keras, tfmeta
    net = tfmeta.models.conv4((28, 28, 1), num_classes=None)
    embedding = keras.Model(net.input, net.get_layer("block3_relu").output)  # 2x2x64 maps
    relation = tfmeta.RelationNetwork(embedding, tfmeta.models.relation_module((2, 2, 64)),
                                      ways=5)
    relation.compile(optimizer=keras.optimizers.Adam(1e-3),
                     loss=tfmeta.losses.OneHotMeanSquaredError(), metrics=["accuracy"])
    sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    relation.fit(sources["train"].episodes(ways=5, shots=1, queries=19, meta_batch_size=1,
                                           seed=0), steps_per_epoch=1000)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        relation_module: keras.Model,
        ways: int | None = None,
        query_statistics: str = query_statistics_lib.MOVING,
        **kwargs,
    ):
        super().__init__(model, ways=ways, query_statistics=query_statistics, **kwargs)
        adaptation.check_built(relation_module)
        _check_relation_module(model, relation_module)
        self.relation_module = relation_module
        # A plain object, so Keras does not track the tail's (shared) variables twice.
        self._split_module = split_relation_module.SplitRelationModule.of(relation_module)

    @property
    def meta_variables(self) -> list:
        """The embedding's trainable weights, then the relation module's."""
        return list(self.model.trainable_variables) + list(
            self.relation_module.trainable_variables)

    @property
    def state_variables(self) -> list:
        """The embedding's non-trainable weights, then the relation module's."""
        return list(self.model.non_trainable_variables) + list(
            self.relation_module.non_trainable_variables)

    def class_embeddings(self, support: tf.Tensor, support_y: tf.Tensor, ways) -> tf.Tensor:
        """The sum of each class's support embeddings: `[N, ...]`."""
        return tf.math.unsorted_segment_sum(support, support_y, ways)

    def head(self, support, support_y, queries, ways, state, training):
        classes = self.class_embeddings(support, support_y, ways)
        params = [tf.convert_to_tensor(v.value) for v in self.relation_module.trainable_variables]
        split = self._split_module
        if split is None:
            module, support_pairs, query_pairs = (
                self.relation_module, pairs(support, classes), pairs(queries, classes))
        else:  # The first layer once per class and per example, then the rest per pair.
            module = split.tail
            support_pairs, query_pairs = split.paired(classes, params, support, queries)
            params = split.tail_params(params)
        scores, state = query_statistics_lib.predict_queries(
            module, params, state, support_pairs, query_pairs,
            mode=self.query_statistics, training=training,
        )
        return tf.reshape(scores, [tf.shape(queries)[0], ways]), state

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(relation_module=keras.saving.serialize_keras_object(self.relation_module))
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        config["relation_module"] = keras.saving.deserialize_keras_object(
            config["relation_module"], custom_objects=custom_objects
        )
        return super().from_config(config, custom_objects=custom_objects)


def _check_relation_module(model: keras.Model, relation_module: keras.Model) -> None:
    """Raises unless the module takes a concatenated pair of the model's embeddings to one score."""
    feature = tuple(model.outputs[0].shape[1:])
    expected = (*feature[:-1], 2 * feature[-1]) if feature and feature[-1] else None
    received = tuple(relation_module.inputs[0].shape[1:])
    outputs = tuple(relation_module.outputs[0].shape[1:])
    if received != expected or outputs not in ((1,), ()):
        raise ValueError(
            f"Expected a relation module from pairs of shape {expected} (a class's and a "
            f"query's embeddings {feature} concatenated on the last axis) to one score (1,), "
            f"e.g. tfmeta.models.relation_module({feature}). Received: input shape "
            f"{received}, output shape {outputs}"
        )
