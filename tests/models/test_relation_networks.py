"""The paper's Relation Network embedding: its feature maps, and a learner built on it."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta


@pytest.mark.parametrize("input_shape, maps", [((28, 28, 1), 5), ((84, 84, 3), 19)])
def test_embedding_keeps_the_papers_feature_maps(input_shape, maps):
    embedding = tfmeta.models.relation_embedding(input_shape, filters=8)
    assert embedding.outputs[0].shape[1:] == (maps, maps, 8)
    pools = [layer.name for layer in embedding.layers
             if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == ["block0_pool", "block1_pool"]
    paddings = [layer.padding for layer in embedding.layers
                if isinstance(layer, keras.layers.Conv2D)]
    assert paddings == ["valid", "valid", "same", "same"]


def test_relation_network_on_it_scores_every_class_of_an_episode():
    keras.utils.set_random_seed(0)
    embedding = tfmeta.models.relation_embedding((28, 28, 1), filters=4)
    module = tfmeta.models.relation_module(embedding.outputs[0].shape[1:], filters=4)
    learner = tfmeta.RelationNetwork(embedding, module, ways=3)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=tfmeta.losses.OneHotMeanSquaredError())
    rng = np.random.default_rng(0)
    episode = {"support_x": rng.uniform(size=(1, 3, 28, 28, 1)).astype("float32"),
               "support_y": np.arange(3)[None],
               "query_x": rng.uniform(size=(1, 4, 28, 28, 1)).astype("float32"),
               "query_y": np.array([[0, 1, 2, 0]])}
    scores = learner.predict_on_batch(episode)
    assert scores.shape == (1, 4, 3)
    assert np.all((scores >= 0) & (scores <= 1))
    order = [2, 0, 1]
    permuted = dict(episode, support_x=episode["support_x"][:, order],
                    support_y=episode["support_y"][:, order])
    np.testing.assert_allclose(learner.predict_on_batch(permuted), scores, atol=1e-6)
    before = [v.numpy().copy() for v in learner.trainable_variables]
    learner.train_on_batch(tf.data.Dataset.from_tensors(episode).get_single_element())
    assert any(np.abs(v.numpy() - b).max() > 0 for v, b in zip(learner.trainable_variables, before))


@pytest.mark.parametrize("input_shape", [(9, 28, 1), (28, 28)])
def test_embedding_refuses_inputs_it_cannot_embed(input_shape):
    message = (r"Expected images \(height, width, channels\) of at least 10x10.*Received: "
               + re.escape(f"input_shape={input_shape}"))
    with pytest.raises(ValueError, match=message):
        tfmeta.models.relation_embedding(input_shape)
    assert tfmeta.models.relation_embedding((10, 10, 1), filters=2).outputs[0].shape[1:3] == (1, 1)
