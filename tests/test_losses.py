"""The task losses and metric of the one-pass learners, against direct numpy formulas."""

import math

import numpy as np
import tensorflow as tf

import tfmeta


def gaussian_predictions(rng, shape):
    return np.stack([rng.standard_normal(shape), rng.uniform(0.2, 2.0, shape)], -1)


def test_gaussian_negative_log_likelihood_sums_the_log_densities_of_each_dimension():
    rng = np.random.default_rng(0)
    y, predictions = rng.standard_normal((4, 3)), gaussian_predictions(rng, (4, 3))
    mean, stddev = predictions[..., 0], predictions[..., 1]
    density = np.exp(-0.5 * ((y - mean) / stddev) ** 2) / (stddev * math.sqrt(2 * math.pi))
    loss = tfmeta.losses.GaussianNegativeLogLikelihood()
    np.testing.assert_allclose(loss.call(tf.constant(y), tf.constant(predictions)).numpy(),
                               -np.log(density).sum(-1), rtol=1e-12)


def test_predictive_mean_squared_error_ignores_the_standard_deviation():
    rng = np.random.default_rng(1)
    y, predictions = rng.standard_normal((5, 2)), gaussian_predictions(rng, (5, 2))
    wider = predictions * np.array([1.0, 3.0])
    for values in (predictions, wider):
        np.testing.assert_allclose(
            tfmeta.losses.predictive_mean_squared_error(tf.constant(y), tf.constant(values)),
            ((y - predictions[..., 0]) ** 2).mean(-1), rtol=1e-12)
