"""The Gaussian-process curve family: episode structure, the RBF covariance, determinism, bad
input."""

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import GaussianProcessTasks
from tfmeta.data.gaussian_process import rbf_kernel


def test_meta_batches_have_the_episode_structure_within_the_input_range():
    dataset = GaussianProcessTasks().episodes(support_shots=7, query_shots=9, meta_batch_size=4,
                                              seed=0)
    assert dataset.element_spec["support_x"].shape == (4, 7, 1)
    assert dataset.element_spec["query_y"].shape == (4, 9, 1)
    batch = next(iter(dataset))
    assert batch["query_y"].shape == (4, 9, 1) and batch["query_y"].dtype == tf.float32
    x = np.concatenate([batch["support_x"], batch["query_x"]], axis=1)
    assert x.min() >= -2.0 and x.max() <= 2.0


def test_rbf_kernel_is_the_squared_exponential_plus_noise():
    x = np.array([[0.0], [0.3], [-1.0]])
    expected = 1.5**2 * np.exp(-0.5 * (x - x.T) ** 2 / 0.4**2) + 0.1**2 * np.eye(3)
    np.testing.assert_allclose(rbf_kernel(tf.constant(x), 0.4, 1.5, 0.1).numpy(), expected,
                               rtol=1e-12)


def test_targets_have_the_kernel_covariance_across_tasks():
    tasks = GaussianProcessTasks(dtype=tf.float64)
    batch = next(iter(tasks.episodes(1, 1, meta_batch_size=20000, seed=3)))
    x0, x1 = batch["support_x"].numpy()[:, 0, 0], batch["query_x"].numpy()[:, 0, 0]
    y0, y1 = batch["support_y"].numpy()[:, 0, 0], batch["query_y"].numpy()[:, 0, 0]
    np.testing.assert_allclose(np.mean(y0 * y0), 1.0 + 0.02**2, atol=0.04)
    np.testing.assert_allclose(np.mean(y0), 0.0, atol=0.03)
    distance = np.abs(x0 - x1)
    for low, high in ((0.0, 0.1), (0.3, 0.4), (0.6, 0.7), (1.2, 1.6)):
        near = (distance >= low) & (distance < high)
        expected = np.mean(np.exp(-0.5 * distance[near] ** 2 / 0.4**2))
        np.testing.assert_allclose(np.mean(y0[near] * y1[near]), expected, atol=0.08)


def test_same_seed_same_curves_and_different_seed_different_curves():
    first = next(iter(GaussianProcessTasks().episodes(5, 5, meta_batch_size=3, seed=7)))
    again = next(iter(GaussianProcessTasks().episodes(5, 5, meta_batch_size=3, seed=7)))
    other = next(iter(GaussianProcessTasks().episodes(5, 5, meta_batch_size=3, seed=8)))
    np.testing.assert_array_equal(first["query_y"], again["query_y"])
    assert not np.allclose(first["query_y"], other["query_y"])


@pytest.mark.parametrize("argument, value, message", [
    ("lengthscale", 0.0,
     r"Expected `lengthscale` to be a finite float > 0. Received: lengthscale=0.0"),
    ("noise_scale", -1.0, r"Expected `noise_scale` to be a finite float > 0"),
    ("input_range", (1.0, 1.0), r"Expected `input_range` as \(low, high\) with low < high"),
])
def test_invalid_arguments_are_refused(argument, value, message):
    with pytest.raises(ValueError, match=message):
        GaussianProcessTasks(**{argument: value})
