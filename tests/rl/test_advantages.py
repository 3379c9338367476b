import numpy as np
import pytest
import tensorflow as tf

from tfmeta.rl import advantages


def _padded(seed=0, shape=(2, 3, 7)):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, shape[-1] + 1, size=shape[:-1])
    mask = (np.arange(shape[-1]) < lengths[..., None]).astype(np.float64)
    return rng.normal(size=shape) * mask, rng.normal(size=shape), mask


def _reference_gae(rewards, values, mask, gamma, lam):
    result = np.zeros_like(rewards)
    for index in np.ndindex(rewards.shape[:-1]):
        length = int(mask[index].sum())
        running = 0.0
        for t in reversed(range(length)):
            next_value = values[index][t + 1] if t + 1 < length else 0.0
            delta = rewards[index][t] + gamma * next_value - values[index][t]
            running = delta + gamma * lam * running
            result[index][t] = running
    return result


def test_discounted_returns_match_a_backward_recursion():
    rewards, _, mask = _padded()
    expected = _reference_gae(rewards, np.zeros_like(rewards), mask, 0.9, 1.0)
    np.testing.assert_allclose(advantages.discounted_returns(rewards, mask, 0.9), expected)


@pytest.mark.parametrize("gae_lambda", [0.0, 0.95, 1.0])
def test_generalized_advantages_match_a_backward_recursion(gae_lambda):
    rewards, values, mask = _padded(seed=1)
    expected = _reference_gae(rewards, values, mask, 0.99, gae_lambda)
    np.testing.assert_allclose(
        advantages.generalized_advantages(rewards, values, mask, 0.99, gae_lambda),
        expected,
        atol=1e-12,
    )


def test_gae_with_lambda_one_is_returns_minus_baseline():
    rewards, values, mask = _padded(seed=2)
    returns = advantages.discounted_returns(rewards, mask, 0.99)
    np.testing.assert_allclose(
        advantages.generalized_advantages(rewards, values, mask, 0.99, 1.0),
        (returns - values) * mask,
        atol=1e-12,
    )


def test_normalize_per_task_gives_zero_mean_unit_std_over_each_tasks_steps():
    values, _, mask = _padded(seed=3)
    normalized = advantages.normalize_per_task(
        tf.constant(values * 5 + 3), tf.constant(mask)
    ).numpy()
    for task in range(values.shape[0]):
        valid = normalized[task][mask[task] > 0]
        assert valid.mean() == pytest.approx(0.0, abs=1e-9)
        assert valid.std() == pytest.approx(1.0, abs=1e-6)
    assert np.all(normalized[mask == 0] == 0)


def test_without_scale_each_tasks_advantages_are_only_centred():
    values, _, mask = _padded(seed=4)
    centred = advantages.normalize_per_task(
        tf.constant(values * 5 + 3), tf.constant(mask), scale=False
    ).numpy()
    for task in range(values.shape[0]):
        valid = (values[task] * 5 + 3)[mask[task] > 0]
        np.testing.assert_allclose(centred[task][mask[task] > 0], valid - valid.mean(), atol=1e-9)
    assert np.all(centred[mask == 0] == 0)
