"""Relation Networks: the relation module scores (class sum, query) pairs of embeddings."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.learners import split_relation_module


def test_scores_are_the_relation_module_on_class_sums_paired_with_each_query(
        omniglot_like_batch):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(6)])
    module = tfmeta.models.relation_module((6,), hidden_units=4)
    learner = tfmeta.RelationNetwork(net, module, ways=3)
    learner.compile(loss=tfmeta.losses.OneHotMeanSquaredError())
    batch = omniglot_like_batch(tasks=1, ways=3, shots=2, queries=2)
    scores = learner.predict_on_batch(batch)[0]
    support, queries = net(batch["support_x"][0]).numpy(), net(batch["query_x"][0]).numpy()
    labels = batch["support_y"][0].numpy()
    for q, query in enumerate(queries):
        for n in range(3):
            pair = np.concatenate([support[labels == n].sum(axis=0), query])[None]
            np.testing.assert_allclose(scores[q, n], module(pair).numpy()[0, 0], rtol=1e-5)


def test_one_hot_mean_squared_error_regresses_scores_to_the_labels():
    loss = tfmeta.losses.OneHotMeanSquaredError()
    scores = tf.constant([[0.9, 0.2, 0.0], [0.1, 0.7, 0.4]])
    expected = np.mean([(0.1**2 + 0.2**2) / 3, (0.1**2 + 0.3**2 + 0.4**2) / 3])
    np.testing.assert_allclose(float(loss(tf.constant([0, 1]), scores)), expected, rtol=1e-6)


def _relation_on_maps(ways, module=None):
    keras.utils.set_random_seed(0)
    embedding = tfmeta.models.relation_embedding((12, 12, 1), filters=3)
    module = module or tfmeta.models.relation_module(embedding.outputs[0].shape[1:], filters=4)
    learner = tfmeta.RelationNetwork(embedding, module, ways=ways)
    learner.compile(loss=tfmeta.losses.OneHotMeanSquaredError())
    return learner


def _scores_state_and_meta_gradients(learner, task, training):
    with tf.GradientTape() as tape:
        scores, state = learner.adapt_and_predict(task, learner.read_state(), training=training)
        weights = tf.reshape(tf.range(1, 1 + tf.size(scores), dtype=scores.dtype), tf.shape(scores))
        loss = tf.reduce_sum(scores * weights)  # each score its own weight in the gradient
    return scores, state, tape.gradient(loss, learner.meta_variables)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("mode", tfmeta.query_statistics.MODES)
def test_first_layer_split_by_halves_equals_the_module_on_concatenated_pairs(
        float64, mode, training):
    # The module's first convolution runs once per class and once per example
    # (`split_relation_module`); scores, BatchNorm state and meta-gradients
    # must equal the module run on every concatenated pair (float64).
    learner = _relation_on_maps(ways=3)
    learner.query_statistics = mode
    assert learner._split_module is not None
    generator = tf.random.Generator.from_seed(1)
    task = {"support_x": generator.uniform((6, 12, 12, 1), dtype=tf.float64),
            "support_y": tf.constant([0, 1, 2, 0, 1, 2]),
            "query_x": generator.uniform((4, 12, 12, 1), dtype=tf.float64),
            "query_y": tf.constant([2, 0, 1, 1])}
    split = _scores_state_and_meta_gradients(learner, task, training)
    learner._split_module = None
    whole = _scores_state_and_meta_gradients(learner, task, training)
    for ours, reference in zip(tf.nest.flatten(split), tf.nest.flatten(whole)):
        # Within float64 rounding of order-one values (a bias before a BatchNorm has a zero
        # gradient, whose rounding has no scale of its own).
        scale = max(1.0, np.max(np.abs(reference.numpy())))
        np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=0, atol=1e-12 * scale)


def test_only_a_first_layer_linear_in_the_pair_is_split():
    # A first layer that is not linear in its input (here a ReLU before the
    # convolution) must see each pair whole; the paper's module splits.
    inputs = keras.Input((1, 1, 6))
    x = keras.layers.ReLU()(inputs)
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 1)(x))
    module = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    keras.utils.set_random_seed(0)
    embedding = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(3, 28)])
    learner = tfmeta.RelationNetwork(embedding, module, ways=2)
    assert learner._split_module is None
    assert split_relation_module.SplitRelationModule.of(
        tfmeta.models.relation_module((2, 2, 3))) is not None
