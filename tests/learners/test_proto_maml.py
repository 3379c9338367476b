"""Proto-MAML (head-only): ProtoNet's softmax without steps, the adapted head with them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from padded_episodes_testing import CONFIG, compiled, embedding, padded_batch, unpadded


def test_without_inner_steps_it_is_protonet(omniglot_like_batch):
    batch = omniglot_like_batch(tasks=2, ways=5, shots=2, queries=3)
    proto_maml = compiled(tfmeta.ProtoMAML(embedding_28(), ways=5, inner_steps=0))
    protonet = compiled(tfmeta.ProtoNet(embedding_28(), ways=5))
    np.testing.assert_allclose(
        tf.nn.log_softmax(proto_maml.predict_on_batch(batch)),
        tf.nn.log_softmax(protonet.predict_on_batch(batch)), rtol=1e-4, atol=1e-4,
    )


def embedding_28(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(6)])


def test_inner_steps_lower_the_support_loss_by_the_sgd_update(omniglot_like_batch):
    """One step from the prototype head equals a hand-written SGD step on the support loss."""
    batch = omniglot_like_batch(tasks=1, ways=4, shots=2, queries=2)
    learner = compiled(tfmeta.ProtoMAML(embedding_28(), ways=4, inner_learning_rate=0.05,
                                        inner_steps=1))
    support = learner.model(batch["support_x"][0])
    query = learner.model(batch["query_x"][0])
    labels = batch["support_y"][0]
    prototypes = tf.math.unsorted_segment_mean(support, labels, 4)
    weights, bias = tf.Variable(2 * prototypes), tf.Variable(-tf.reduce_sum(prototypes**2, -1))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels, tf.matmul(support, weights, transpose_b=True) + bias))
    grad_w, grad_b = tape.gradient(loss, [weights, bias])
    expected = tf.matmul(query, weights - 0.05 * grad_w, transpose_b=True) + bias - 0.05 * grad_b
    np.testing.assert_allclose(learner.predict_on_batch(batch)[0], expected, rtol=1e-4, atol=1e-4)


def test_padded_episodes_equal_unpadded_and_meta_gradients_flow():
    batch = padded_batch(tasks=3, seed=4)
    padded = compiled(tfmeta.ProtoMAML(embedding(), ways=CONFIG.max_ways, inner_steps=2))
    plain = compiled(tfmeta.ProtoMAML(embedding(), ways=None, inner_steps=2))
    logits = padded.predict_on_batch(batch)
    for task in range(3):
        ways = int(batch["ways"][task])
        query = batch["query_mask"][task].numpy()
        expected = plain.predict_on_batch(unpadded(batch, task))[0]
        np.testing.assert_allclose(logits[task][query][:, :ways], expected, rtol=1e-4, atol=1e-4)
        one_task = {key: value[task : task + 1] for key, value in batch.items()}
        loss, grads, _, _ = padded.compute_meta_gradients(one_task)
        loss_plain, grads_plain, _, _ = plain.compute_meta_gradients(unpadded(batch, task))
        np.testing.assert_allclose(loss, loss_plain, rtol=1e-4)
        for g, g_plain in zip(grads, grads_plain):
            np.testing.assert_allclose(g, g_plain, rtol=1e-3, atol=1e-6)
    assert any(np.abs(g).max() > 0 for g in grads)


def test_second_order_differs_from_first_order_and_config_round_trips():
    batch = padded_batch(tasks=1, seed=2)
    second = compiled(tfmeta.ProtoMAML(embedding(), ways=CONFIG.max_ways, inner_steps=2,
                                       inner_learning_rate=0.5))
    first = compiled(tfmeta.ProtoMAML(embedding(), ways=CONFIG.max_ways, inner_steps=2,
                                      inner_learning_rate=0.5, first_order=True))
    _, grads_second, _, _ = second.compute_meta_gradients(batch)
    _, grads_first, _, _ = first.compute_meta_gradients(batch)
    assert max(float(np.abs(a - b).max()) for a, b in zip(grads_second, grads_first)) > 1e-6
    config = second.get_config()
    assert config["inner_steps"] == 2 and config["first_order"] is False
    with pytest.raises(ValueError, match="inner_steps"):
        tfmeta.ProtoMAML(embedding(), inner_steps=-1)


def test_save_and_load_keep_the_predictions(tmp_path):
    batch = padded_batch(tasks=2, seed=5)
    learner = compiled(tfmeta.ProtoMAML(embedding(), ways=CONFIG.max_ways, inner_steps=2,
                                        eval_inner_steps=3, inner_learning_rate=0.2))
    learner.save(tmp_path / "proto_maml.keras")
    loaded = keras.saving.load_model(tmp_path / "proto_maml.keras")
    assert isinstance(loaded, tfmeta.ProtoMAML) and loaded.eval_inner_steps == 3
    np.testing.assert_allclose(loaded.predict_on_batch(batch), learner.predict_on_batch(batch),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_omniglot_variable_episodes_train_proto_maml_far_above_chance(omniglot):
    """Proto-MAML (Conv-4, 28x28, one inner step of the head) meta-trained on Meta-Dataset
    episodes of 5-20 ways over Omniglot's training characters, tested on fixed 5-way and
    20-way 1-shot episodes of unseen characters: far above chance (20% and 5%)."""
    config = tfmeta.data.VARIABLE_EPISODE_CONFIGS["small"]
    train = tfmeta.data.variable_episodes(omniglot["train"], config, meta_batch_size=1, seed=0)
    learner = compiled(
        tfmeta.ProtoMAML(tfmeta.models.conv4(num_classes=None), ways=config.max_ways,
                         inner_learning_rate=0.01, inner_steps=1),
        keras.optimizers.Adam(1e-3),
    )
    learner.fit(train, steps_per_epoch=300, epochs=1, verbose=0)
    for ways, chance in ((5, 0.2), (20, 0.05)):
        test = omniglot["test"].episodes(ways, 1, 5, meta_batch_size=10, num_episodes=100, seed=1)
        accuracy = tfmeta.evaluation.evaluate_episodes(learner, test)["accuracy"]
        print(f"{ways}-way 1-shot: {accuracy:.3f}")
        assert accuracy > 3 * chance, (ways, accuracy)
