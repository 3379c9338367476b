"""Matching Networks: log-probabilities of attention over the support labels."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta


def _numpy_scores(queries, support, similarity):
    if similarity == "cosine":
        def unit(x):
            return x / np.linalg.norm(x, axis=1, keepdims=True)

        return unit(queries) @ unit(support).T
    return -((queries[:, None, :] - support[None, :, :]) ** 2).sum(axis=-1)


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
def test_predictions_are_log_probabilities_of_attention_over_support_labels(
        omniglot_like_batch, similarity):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(6)])
    learner = tfmeta.MatchingNetworks(net, ways=5, similarity=similarity)
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = omniglot_like_batch(tasks=2, ways=5, shots=2, queries=2)
    predictions = learner.predict_on_batch(batch)
    for task in range(2):
        support = net(batch["support_x"][task]).numpy().astype(np.float64)
        queries = net(batch["query_x"][task]).numpy().astype(np.float64)
        scores = _numpy_scores(queries, support, similarity)
        attention = np.exp(scores - scores.max(axis=1, keepdims=True))
        attention /= attention.sum(axis=1, keepdims=True)
        expected = attention @ np.eye(5)[batch["support_y"][task].numpy()]
        np.testing.assert_allclose(np.exp(predictions[task]), expected, rtol=1e-4, atol=1e-6)
    # Cross-entropy from these "logits" is the paper's -log P(y | q, S).
    loss = learner.task_loss(batch["query_y"][0], tf.constant(predictions[0]))
    picked = predictions[0][np.arange(10), batch["query_y"][0].numpy()]
    np.testing.assert_allclose(float(loss), -picked.mean(), rtol=1e-5)


def test_far_support_examples_give_finite_loss_and_gradients():
    """Attention that underflows to 0 for the true class stays finite in log space."""
    queries = tf.constant([[0.0, 0.0], [50.0, 0.0]])
    support = tf.constant([[0.0, 0.0], [60.0, 0.0], [0.0, 70.0]])
    targets = tf.one_hot([0, 1, 2], 3)
    with tf.GradientTape() as tape:
        tape.watch(support)
        scores = tfmeta.learners.matching_networks.similarities(queries, support, "euclidean")
        log_p = tfmeta.learners.matching_networks.log_class_probabilities(scores, targets)
        loss = -log_p[0, 2]  # the first query's attention to class 2 is exp(-4900) ~ 0
    gradient = tape.gradient(loss, support)
    assert np.isfinite(loss.numpy()) and loss.numpy() > 4000
    assert np.all(np.isfinite(gradient.numpy()))


def test_unknown_similarity_is_refused_and_a_saved_one_is_kept(tmp_path):
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"`similarity` to be one of .*similarity='l1'"):
        tfmeta.MatchingNetworks(net, ways=2, similarity="l1")
    learner = tfmeta.MatchingNetworks(net, ways=2, similarity="euclidean")
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    learner.save(tmp_path / "matching.keras")
    assert keras.saving.load_model(tmp_path / "matching.keras").similarity == "euclidean"
