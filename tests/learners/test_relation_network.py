"""Relation Networks: the relation module scores (class sum, query) pairs of embeddings."""

import keras
import numpy as np
import tensorflow as tf

import tfmeta


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
