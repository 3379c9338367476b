"""Prototypical Networks: logits are negative squared distances to the support means."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta


def embedding(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(6)]
    )


def compiled_protonet(net, **kwargs):
    learner = tfmeta.ProtoNet(net, **kwargs)
    learner.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    return learner


@pytest.mark.parametrize("ways", [5, None])
def test_logits_are_negative_squared_distances_to_the_support_means(omniglot_like_batch, ways):
    learner = compiled_protonet(embedding(), ways=ways)
    batch = omniglot_like_batch(tasks=2, ways=5, shots=3, queries=2)
    logits = learner.predict_on_batch(batch)
    assert logits.shape == (2, 10, 5)
    for task in range(2):
        support = learner.model(batch["support_x"][task]).numpy()
        query = learner.model(batch["query_x"][task]).numpy()
        labels = batch["support_y"][task].numpy()
        means = np.stack([support[labels == n].mean(axis=0) for n in range(5)])
        expected = -((query[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
        np.testing.assert_allclose(logits[task], expected, rtol=1e-5, atol=1e-4)


def test_meta_training_with_more_ways_than_evaluation(omniglot_like_batch):
    learner = compiled_protonet(embedding())
    learner.fit(tf.data.Dataset.from_tensors(omniglot_like_batch(ways=10)), verbose=0)
    logs = learner.evaluate(tf.data.Dataset.from_tensors(omniglot_like_batch(ways=5)),
                            return_dict=True, verbose=0)
    assert "pre_adaptation_loss" not in logs  # meaningless without an inner loop
    assert set(logs) == {"loss", "accuracy"}


def test_embedding_gradients_flow_and_batchnorm_statistics_are_kept(omniglot_like_batch):
    keras.utils.set_random_seed(0)
    learner = compiled_protonet(tfmeta.models.conv4(num_classes=None, filters=4))
    before = [v.numpy().copy() for v in learner.model.variables]
    learner.train_on_batch(omniglot_like_batch())
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, learner.model.variables)]
    assert all(changed), [v.path for v, c in zip(learner.model.variables, changed) if not c]


def test_invalid_ways_are_rejected():
    with pytest.raises(ValueError, match="Expected `ways` to be an integer >= 1 or None"):
        tfmeta.ProtoNet(embedding(), ways=0)


def test_saved_and_reloaded_protonet_gives_identical_outputs(tmp_path, omniglot_like_batch):
    keras.utils.set_random_seed(0)
    learner = compiled_protonet(tfmeta.models.conv4(num_classes=None, filters=4), ways=5)
    batch = omniglot_like_batch()
    learner.train_on_batch(batch)
    path = tmp_path / "protonet.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, tfmeta.ProtoNet) and restored.ways == 5
    assert restored.query_statistics == "moving"
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))


def test_protonet_beats_chance_on_held_out_omniglot_characters(omniglot_5way_1shot):
    keras.utils.set_random_seed(0)
    learner = tfmeta.ProtoNet(tfmeta.models.conv4(num_classes=None, filters=32))
    result = omniglot_5way_1shot(learner, iterations=60, optimizer=keras.optimizers.Adam(0.005),
                                 train_ways=20, meta_batch_size=2)
    assert result["accuracy"] > 0.5, result  # chance: 0.2
