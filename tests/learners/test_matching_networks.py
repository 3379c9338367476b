"""Matching Networks: log-probabilities of cosine attention over the support labels."""

import keras
import numpy as np
import tensorflow as tf

import tfmeta


def test_predictions_are_log_probabilities_of_cosine_attention_over_support_labels(
        omniglot_like_batch):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(6)])
    learner = tfmeta.MatchingNetworks(net, ways=5)
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = omniglot_like_batch(tasks=2, ways=5, shots=2, queries=2)
    predictions = learner.predict_on_batch(batch)
    for task in range(2):
        support = net(batch["support_x"][task]).numpy()
        queries = net(batch["query_x"][task]).numpy()
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
        similarity = unit(queries) @ unit(support).T
        attention = np.exp(similarity) / np.exp(similarity).sum(axis=1, keepdims=True)
        expected = attention @ np.eye(5)[batch["support_y"][task].numpy()]
        np.testing.assert_allclose(np.exp(predictions[task]), expected, rtol=1e-5, atol=1e-6)
    # Cross-entropy from these "logits" is the paper's -log P(y | q, S).
    loss = learner.task_loss(batch["query_y"][0], tf.constant(predictions[0]))
    picked = predictions[0][np.arange(10), batch["query_y"][0].numpy()]
    np.testing.assert_allclose(float(loss), -picked.mean(), rtol=1e-5)
