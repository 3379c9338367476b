import numpy as np
import pytest
import tensorflow as tf

from tfmeta.rl.linear_baseline import LinearFeatureBaseline


def _design(observations, steps, rollouts):
    time = np.broadcast_to(np.arange(steps)[:, None] / 100.0, (rollouts, steps, 1))
    o = np.clip(observations, -10, 10)
    return np.concatenate([o, o**2, time, time**2, time**3, np.ones_like(time)], axis=-1)


def test_fit_is_the_ridge_least_squares_solution_over_the_valid_steps():
    rng = np.random.default_rng(0)
    tasks, rollouts, steps, features = 2, 4, 12, 3
    observations = rng.normal(size=(tasks, rollouts, steps, features)) * 3
    returns = rng.normal(size=(tasks, rollouts, steps))
    lengths = rng.integers(3, steps + 1, size=(tasks, rollouts))
    mask = (np.arange(steps) < lengths[..., None]).astype(np.float64)
    baseline = LinearFeatureBaseline(regularization=1e-5)
    coefficients = baseline.fit(
        tf.constant(observations), tf.constant(returns), tf.constant(mask)
    ).numpy()
    for task in range(tasks):
        design = _design(observations[task], steps, rollouts)
        rows, targets = design[mask[task] > 0], returns[task][mask[task] > 0]
        expected = np.linalg.solve(rows.T @ rows + 1e-5 * np.eye(rows.shape[1]), rows.T @ targets)
        np.testing.assert_allclose(coefficients[task], expected, rtol=1e-6, atol=1e-8)


def test_unregularized_fit_equals_numpy_least_squares():
    rng = np.random.default_rng(1)
    observations = rng.normal(size=(1, 3, 100, 2))
    returns = rng.normal(size=(1, 3, 100))
    mask = np.ones_like(returns)
    coefficients = LinearFeatureBaseline(regularization=0.0).fit(
        tf.constant(observations), tf.constant(returns), tf.constant(mask)
    )
    rows = _design(observations[0], 100, 3).reshape(-1, 8)
    expected = np.linalg.lstsq(rows, returns.reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(coefficients[0], expected, rtol=1e-5, atol=1e-7)


def test_predictions_reproduce_returns_that_are_linear_in_the_features():
    rng = np.random.default_rng(2)
    observations = tf.constant(rng.normal(size=(1, 5, 20, 2)))
    baseline = LinearFeatureBaseline(regularization=0.0)
    truth = rng.normal(size=(1, baseline.features(observations).shape[-1]))
    returns = baseline.predict(tf.constant(truth), observations)
    values = baseline(observations, returns, tf.ones_like(returns))
    np.testing.assert_allclose(values, returns, atol=1e-8)


def test_fit_rejects_observations_without_task_and_rollout_axes():
    with pytest.raises(ValueError, match=r"\[tasks, rollouts, steps, observation_dim\]"):
        LinearFeatureBaseline().fit(tf.zeros([5, 2]), tf.zeros([5]), tf.ones([5]))


def test_previous_task_values_come_from_the_previous_tasks_fit():
    # The paper's code: one baseline across the tasks, predicting before refitting.
    rng = np.random.default_rng(3)
    observations = tf.constant(rng.normal(size=(3, 4, 10, 2)))
    returns = tf.constant(rng.normal(size=(3, 4, 10)))
    mask = tf.ones_like(returns)
    own = LinearFeatureBaseline()
    coefficients = own.fit(observations, returns, mask)
    values = LinearFeatureBaseline(fit_on="previous_task")(observations, returns, mask).numpy()
    for task, previous in ((0, 2), (1, 0), (2, 1)):
        expected = own.predict(coefficients[previous : previous + 1], observations[task : task + 1])
        np.testing.assert_allclose(values[task], expected[0], rtol=1e-10)
    assert not np.allclose(values, own(observations, returns, mask))


def test_an_unknown_fit_is_refused():
    with pytest.raises(ValueError, match=r"`fit_on` to be one of \['own_task', 'previous_task'\]"):
        LinearFeatureBaseline(fit_on="all_tasks")
