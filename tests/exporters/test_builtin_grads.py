"""Each builtin-gradient op: same forward and same gradients as TensorFlow's own ops."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.exporters import builtin_grads
from tfmeta.rl.distributions import Categorical, DiagonalGaussian


def normal(*shape, seed=0):
    return tf.random.stateless_normal(shape, seed=[seed, 1])


def forward_and_grads(fn, *args):
    with tf.GradientTape() as tape:
        tape.watch(args)
        out = fn(*args)
        # a fixed random projection, so every output element gets its own upstream gradient
        loss = tf.reduce_sum(out * normal(*out.shape, seed=7))
    return out, tape.gradient(loss, args)


def assert_same(fn, reference, *args, atol=1e-5):
    out, grads = forward_and_grads(fn, *args)
    expected_out, expected_grads = forward_and_grads(reference, *args)
    np.testing.assert_allclose(out, expected_out, atol=atol)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad, expected, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activations_match_tensorflow(name):
    assert_same(getattr(builtin_grads, name), getattr(tf.nn, name), normal(4, 6))


def test_dense_matches_matmul_plus_bias():
    assert_same(builtin_grads.dense, lambda x, w, b: tf.matmul(x, w) + b,
                normal(4, 6), normal(6, 3, seed=1), normal(3, seed=2))


@pytest.mark.parametrize(
    "size, kernel, stride, padding",
    [(7, 3, 1, "SAME"), (7, 3, 2, "SAME"), (8, 3, 2, "SAME"), (28, 3, 2, "SAME"),
     (9, 3, 2, "VALID"), (8, 2, 2, "VALID"), (6, 1, 1, "VALID"), (5, 4, 3, "SAME")],
)
def test_conv2d_matches_tensorflow(size, kernel, stride, padding):
    x, w, b = normal(2, size, size + 1, 3), normal(kernel, kernel, 3, 4, seed=1), normal(4, seed=2)
    assert_same(
        lambda x, w, b: builtin_grads.conv2d(x, w, b, (stride, stride), padding),
        lambda x, w, b: tf.nn.conv2d(x, w, stride, padding) + b,
        x, w, b,
    )


def test_batch_norm_train_matches_moments_and_normalization():
    def reference(x, gamma, beta):
        mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, 1e-3)

    x = normal(3, 4, 4, 5) * 2.0 + 1.0
    assert_same(lambda *a: builtin_grads.batch_norm_train(*a, 1e-3)[0], reference,
                x, normal(5, seed=1), normal(5, seed=2), atol=1e-4)
    _, mean, variance = builtin_grads.batch_norm_train(x, tf.ones([5]), tf.zeros([5]), 1e-3)
    expected_mean, expected_variance = tf.nn.moments(x, axes=[0, 1, 2])
    np.testing.assert_allclose(mean, expected_mean, atol=1e-5)
    np.testing.assert_allclose(variance, expected_variance, atol=1e-5)


def _group_norm_reference(x, groups, gamma, beta, epsilon):
    grouped = tf.reshape(x, [*x.shape[:-1], groups, x.shape[-1] // groups])
    axes = [axis for axis in range(1, grouped.shape.rank) if axis != grouped.shape.rank - 2]
    mean, variance = tf.nn.moments(grouped, axes, keepdims=True)
    normalized = tf.reshape((grouped - mean) * tf.math.rsqrt(variance + epsilon), x.shape)
    return normalized * gamma + beta


@pytest.mark.parametrize("shape, groups", [((3, 4, 4, 6), 1), ((3, 4, 4, 6), 3), ((3, 6), 2)])
def test_group_norm_matches_keras_group_normalization(shape, groups):
    x = normal(*shape) * 2.0 + 1.0
    gamma, beta = normal(shape[-1], seed=1), normal(shape[-1], seed=2)
    layer = keras.layers.GroupNormalization(groups=groups)
    layer.build(shape)
    layer.set_weights([gamma.numpy(), beta.numpy()])
    np.testing.assert_allclose(builtin_grads.group_norm(x, groups, gamma, beta, layer.epsilon),
                               layer(x), atol=1e-5)
    assert_same(lambda *a: builtin_grads.group_norm(a[0], groups, a[1], a[2], layer.epsilon),
                lambda *a: _group_norm_reference(a[0], groups, a[1], a[2], layer.epsilon),
                x, gamma, beta, atol=1e-4)


def test_global_average_pool_matches_reduce_mean():
    assert_same(builtin_grads.global_average_pool, lambda x: tf.reduce_mean(x, [1, 2]),
                normal(2, 5, 3, 4))


@pytest.mark.parametrize("height, width", [(6, 6), (7, 5)])
def test_max_pool_matches_tensorflow_without_ties(height, width):
    assert_same(lambda x: builtin_grads.max_pool(x, (2, 2)),
                lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"), normal(2, height, width, 3))


def test_sparse_softmax_cross_entropy_matches_tensorflow():
    labels = tf.constant([0, 2, 1, 2])
    assert_same(
        lambda logits: builtin_grads.sparse_softmax_cross_entropy(labels, logits),
        lambda logits: tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)),
        normal(4, 3) * 3.0,
    )


def test_mean_squared_error_matches_tensorflow():
    targets = normal(5, 2, seed=3)
    assert_same(lambda p: builtin_grads.mean_squared_error(targets, p),
                lambda p: tf.reduce_mean(tf.square(p - targets)), normal(5, 2))


def test_broadcast_rows_matches_tile():
    assert_same(lambda v: builtin_grads.broadcast_rows(v, 4),
                lambda v: tf.tile(v[None], [4, 1]), normal(3))


def test_gaussian_log_prob_matches_the_policy_distribution():
    actions = normal(5, 2, seed=4)
    assert_same(lambda p: builtin_grads.gaussian_log_prob(p, actions),
                lambda p: DiagonalGaussian(2).log_prob(p, actions), normal(5, 4) * 0.5)


def test_categorical_log_prob_matches_the_policy_distribution():
    actions = tf.constant([0, 2, 1, 2, 0])
    assert_same(lambda logits: builtin_grads.categorical_log_prob(logits, actions),
                lambda logits: Categorical(3).log_prob(logits, actions), normal(5, 3) * 2.0)


def test_dynamic_shapes_are_rejected_with_a_clear_error():
    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 1])])
    def pool(x):
        return builtin_grads.global_average_pool(x)

    with pytest.raises(ValueError, match="Expected a static shape"):
        pool.get_concrete_function()
