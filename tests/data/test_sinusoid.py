"""The sinusoid task family: episode structure, the task law, determinism, bad input."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import SinusoidTasks


def test_meta_batches_have_the_episode_structure():
    dataset = SinusoidTasks().episodes(support_shots=10, query_shots=15, meta_batch_size=4, seed=0)
    spec = dataset.element_spec
    assert spec["support_x"].shape == (4, 10, 1) and spec["query_y"].shape == (4, 15, 1)
    assert spec["support_x"].dtype == tf.float32
    batch = next(iter(dataset))
    assert batch["support_x"].shape == (4, 10, 1)
    assert batch["query_x"].shape == (4, 15, 1)
    assert batch["amplitude"].shape == (4,)


def test_targets_follow_the_task_law_within_its_ranges():
    batch = next(iter(SinusoidTasks().episodes(10, 10, meta_batch_size=200, seed=1)))
    amplitude = batch["amplitude"].numpy()[:, None, None]
    phase = batch["phase"].numpy()[:, None, None]
    for x_key, y_key in (("support_x", "support_y"), ("query_x", "query_y")):
        x = batch[x_key].numpy()
        np.testing.assert_allclose(batch[y_key].numpy(), amplitude * np.sin(x - phase), atol=1e-5)
        assert x.min() >= -5.0 and x.max() <= 5.0
    assert 0.1 <= amplitude.min() and amplitude.max() <= 5.0
    assert 0.0 <= phase.min() and phase.max() <= math.pi
    assert amplitude.std() > 1.0, "amplitudes should spread over U[0.1, 5]"


def test_same_seed_same_tasks_and_different_seed_different_tasks():
    first = next(iter(SinusoidTasks().episodes(5, 5, meta_batch_size=3, seed=7)))
    again = next(iter(SinusoidTasks().episodes(5, 5, meta_batch_size=3, seed=7)))
    other = next(iter(SinusoidTasks().episodes(5, 5, meta_batch_size=3, seed=8)))
    np.testing.assert_array_equal(first["support_x"], again["support_x"])
    assert not np.allclose(first["support_x"], other["support_x"])


def test_finite_episode_count_drops_the_incomplete_meta_batch():
    dataset = SinusoidTasks().episodes(5, 5, meta_batch_size=4, num_episodes=10, seed=0)
    assert [batch["support_x"].shape[0] for batch in dataset] == [4, 4]
    single = SinusoidTasks().episodes(5, 5, meta_batch_size=None, num_episodes=3, seed=0)
    assert [episode["support_x"].shape for episode in single] == [(5, 1)] * 3


def test_dtype_is_configurable():
    batch = next(iter(SinusoidTasks(dtype="float64").episodes(2, 2, meta_batch_size=1, seed=0)))
    assert batch["query_y"].dtype == tf.float64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"support_shots": 0}, "`support_shots` to be an integer >= 1. Received: support_shots=0"),
        ({"query_shots": -1}, "`query_shots` to be an integer >= 1"),
        ({"meta_batch_size": 0}, r"`meta_batch_size` to be an integer >= 1 or None\. Received: "),
        ({"num_episodes": 2.5}, r"`num_episodes` to be an integer >= 1 or None\. Received: num"),
    ],
)
def test_bad_episode_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SinusoidTasks().episodes(**kwargs)


def test_inverted_range_is_rejected():
    with pytest.raises(ValueError, match=r"amplitude_range.*low <= high"):
        SinusoidTasks(amplitude_range=(5.0, 0.1))
