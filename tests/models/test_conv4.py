"""Conv-4: the two variants of the literature, built and shaped as published."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta


def test_omniglot_variant_matches_the_reference_architecture():
    model = tfmeta.models.conv4((28, 28, 1), num_classes=5)
    assert model.built and model.output_shape == (None, 5)
    # 4 x (3*3*c_in*64 + 64 conv + 2*64 BN) + (64*5 + 5) head; learn2learn's OmniglotCNN has the
    # same count.
    expected = (9 * 1 * 64 + 64 + 128) + 3 * (9 * 64 * 64 + 64 + 128) + 325
    assert model.count_params() - 4 * 128 == expected
    convs = [layer for layer in model.layers if layer.name.endswith("_conv")]
    assert [tuple(c.strides) for c in convs] == [(2, 2)] * 4
    assert model(tf.zeros((3, 28, 28, 1))).shape == (3, 5)


def test_mini_imagenet_variant_pools_and_flattens():
    model = tfmeta.models.conv4((84, 84, 3), num_classes=5, filters=32, max_pool=True)
    assert model.get_layer("flatten").output.shape == (None, 5 * 5 * 32)
    assert model(tf.zeros((2, 84, 84, 3))).shape == (2, 5)


def test_flatten_pooling_feeds_every_position_to_the_head():
    """Reptile's Omniglot model: stride-2 maps of 2 x 2 flattened, not averaged."""
    model = tfmeta.models.conv4((28, 28, 1), num_classes=5, pooling="flatten")
    assert model.get_layer("flatten").output.shape == (None, 2 * 2 * 64)
    assert model.get_layer("head").kernel.shape == (256, 5)
    mean_pooled = tfmeta.models.conv4((28, 28, 1), num_classes=5)
    assert model.count_params() - mean_pooled.count_params() == (256 - 64) * 5
    # The flattened features keep where on the grid a stroke is: a stroke on the left
    # half and one on the right give different features.
    embedding = tfmeta.models.conv4((28, 28, 1), num_classes=None, pooling="flatten",
                                    normalization="none")
    assert embedding.output_shape == (None, 256)
    left = tf.pad(tf.ones((1, 28, 14, 1)), [[0, 0], [0, 0], [0, 14], [0, 0]])
    left_features, right_features = embedding(tf.concat([left, tf.reverse(left, [2])], 0))
    assert not np.allclose(left_features, right_features)


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match=r"Expected `pooling` to be one of \['mean', 'flatten'\]"):
        tfmeta.models.conv4(pooling="max")


def test_embedding_network_has_no_head():
    assert tfmeta.models.conv4(num_classes=None).output_shape == (None, 64)


def test_sinusoid_mlp_is_40_40():
    model = tfmeta.models.mlp()
    assert [layer.units for layer in model.layers] == [40, 40, 1]
    assert model.count_params() == (1 * 40 + 40) + (40 * 40 + 40) + (40 + 1)


def test_per_example_normalizations_keep_each_prediction_independent_of_the_batch():
    """"layer" (GroupNormalization, one group) and "none" share no statistics between examples."""
    images = tf.random.stateless_normal((4, 28, 28, 1), seed=[1, 2])
    for normalization, kind in (("layer", "GroupNormalization"), ("none", None)):
        model = tfmeta.models.conv4((28, 28, 1), num_classes=5, filters=8,
                                    normalization=normalization)
        kinds = {type(layer).__name__ for layer in model.layers}
        assert "BatchNormalization" not in kinds and (kind is None or kind in kinds)
        together = model(images, training=True)
        alone = tf.concat([model(images[i:i + 1], training=True) for i in range(4)], axis=0)
        tf.debugging.assert_near(alone, together, atol=1e-5)
