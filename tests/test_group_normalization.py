"""tfmeta.layers.GroupNormalization: Keras's normalisation, with second-order meta-gradients
that match finite differences (Keras's own layer stops a gradient inside its variance)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from query_statistics_testing import maml, meta_gradients_and_finite_differences
from tfmeta.layers import GroupNormalization


def image_episode(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "support_x": rng.standard_normal((6, 5, 5, 1)).astype(dtype),
        "support_y": np.array([0, 1, 2, 0, 1, 2], np.int32),
        "query_x": rng.standard_normal((4, 5, 5, 1)).astype(dtype) + 0.5,
        "query_y": np.array([0, 2, 1, 1], np.int32),
    }


def gn_conv(layer_class, dtype="float64", seed=0):
    """Conv 3x3 -> group normalisation (2 groups of 2 channels) -> ReLU -> mean pool ->
    Dense over 5x5 images, with scale and offset away from their initial values."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((5, 5, 1), dtype=dtype), keras.layers.Conv2D(4, 3, dtype=dtype),
        layer_class(groups=2, dtype=dtype), keras.layers.ReLU(dtype=dtype),
        keras.layers.GlobalAveragePooling2D(dtype=dtype), keras.layers.Dense(3, dtype=dtype)])
    model.layers[1].gamma.assign([1.2, 0.8, 1.0, 0.5])
    model.layers[1].beta.assign([0.1, -0.2, 0.3, 0.0])
    return model


@pytest.mark.parametrize("groups, shape", [(1, (3, 4, 4, 6)), (3, (3, 4, 4, 6)), (2, (3, 6))])
def test_normalises_like_keras_group_normalization(groups, shape):
    x = tf.random.stateless_normal(shape, seed=[1, 2]) * 3.0 + 1.0
    ours, theirs = GroupNormalization(groups=groups), keras.layers.GroupNormalization(groups)
    ours.build(shape)
    theirs.build(shape)
    weights = [np.linspace(0.5, 1.5, shape[-1]), np.linspace(-1.0, 1.0, shape[-1])]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)


def test_second_order_meta_gradient_matches_finite_differences():
    variables, grads, numeric = meta_gradients_and_finite_differences(
        maml(gn_conv(GroupNormalization)), image_episode())
    for variable, grad, expected in zip(variables, grads, numeric):
        error = np.linalg.norm(grad.numpy() - expected)
        assert error < 1e-6 * np.linalg.norm(expected) + 1e-9, (variable.path, error)


def test_keras_group_normalization_is_off_at_second_order():
    """Why the layer exists: the same check through Keras's own layer fails."""
    _, grads, numeric = meta_gradients_and_finite_differences(
        maml(gn_conv(keras.layers.GroupNormalization)), image_episode())
    errors = [np.linalg.norm(g.numpy() - e) / (np.linalg.norm(e) + 1e-12)
              for g, e in zip(grads, numeric)]
    assert max(errors) > 1e-4


def test_channels_first_is_refused_and_a_saved_layer_reloads(tmp_path):
    with pytest.raises(ValueError, match=r"channels last \(axis=-1\).*axis=1"):
        keras.Sequential([keras.Input((4, 5, 5)), GroupNormalization(groups=2, axis=1)])
    model = gn_conv(GroupNormalization, dtype="float32")
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.layers[1], GroupNormalization)
    np.testing.assert_array_equal(reloaded(x), model(x))


def test_conv4_layer_normalization_uses_it():
    model = tfmeta.models.conv4(filters=4, normalization="layer")
    assert sum(isinstance(layer, GroupNormalization) for layer in model.layers) == 4
