import math

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.rl.distributions import Categorical, DiagonalGaussian


def test_gaussian_log_prob_is_the_product_of_normal_densities():
    gaussian = DiagonalGaussian(3)
    mean = np.array([[0.5, -1.0, 2.0]])
    log_std = np.array([[0.1, -0.3, 0.7]])
    actions = np.array([[0.0, -0.5, 3.0]])
    std = np.exp(log_std)
    density = np.prod(np.exp(-0.5 * ((actions - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)))
    params = tf.constant(np.concatenate([mean, log_std], axis=-1))
    assert gaussian.log_prob(params, tf.constant(actions)).numpy()[0] == pytest.approx(
        np.log(density)
    )


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    gaussian = DiagonalGaussian(2)
    old = tf.constant([[0.3, -0.2, 0.1, -0.4]], tf.float64)
    new = tf.constant([[0.0, 0.4, -0.2, 0.0]], tf.float64)
    samples = gaussian.sample(tf.tile(old, [200_000, 1]), seed=[3, 4])
    estimate = tf.reduce_mean(gaussian.log_prob(old, samples) - gaussian.log_prob(new, samples))
    assert gaussian.kl(old, new).numpy()[0] == pytest.approx(estimate.numpy(), abs=0.01)
    assert gaussian.kl(old, old).numpy()[0] == pytest.approx(0.0, abs=1e-12)


def test_gaussian_samples_follow_mean_and_std_and_repeat_under_a_seed():
    gaussian = DiagonalGaussian(1)
    params = tf.tile(tf.constant([[2.0, math.log(0.5)]]), [100_000, 1])
    samples = gaussian.sample(params, seed=[1, 2])
    assert float(tf.reduce_mean(samples)) == pytest.approx(2.0, abs=0.01)
    assert float(tf.math.reduce_std(samples)) == pytest.approx(0.5, abs=0.01)
    np.testing.assert_array_equal(samples, gaussian.sample(params, seed=[1, 2]))
    assert not np.array_equal(samples, gaussian.sample(params, seed=[1, 3]))


def test_categorical_log_prob_kl_and_entropy_match_explicit_sums():
    categorical = Categorical(3)
    probabilities = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    other = np.array([[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    logits, other_logits = tf.constant(np.log(probabilities)), tf.constant(np.log(other))
    actions = tf.constant([2, 0])
    np.testing.assert_allclose(categorical.log_prob(logits, actions), np.log([0.5, 0.6]))
    np.testing.assert_allclose(
        categorical.kl(logits, other_logits),
        np.sum(probabilities * np.log(probabilities / other), axis=-1),
    )
    np.testing.assert_allclose(
        categorical.entropy(logits), -np.sum(probabilities * np.log(probabilities), axis=-1)
    )


def test_categorical_samples_follow_the_probabilities():
    categorical = Categorical(3)
    logits = tf.math.log(tf.tile([[0.2, 0.3, 0.5]], [60_000, 1]))
    counts = np.bincount(categorical.sample(logits, seed=[0, 1]).numpy(), minlength=3)
    np.testing.assert_allclose(counts / 60_000, [0.2, 0.3, 0.5], atol=0.01)


@pytest.mark.parametrize("make", [lambda: DiagonalGaussian(0), lambda: Categorical(1)])
def test_distributions_reject_empty_action_spaces(make):
    with pytest.raises(ValueError, match="Expected"):
        make()
