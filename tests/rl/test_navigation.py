import numpy as np
import pytest
import tensorflow as tf

from tfmeta.rl import Navigation2D


def constant_policy(action):
    """`act` that always takes `action`."""
    return lambda observations, seed: tf.broadcast_to(
        tf.constant(action, tf.float32), tf.concat([tf.shape(observations)[:-1], [2]], 0)
    )


def noisy_policy(observations, seed):
    return tf.random.stateless_normal(tf.concat([tf.shape(observations)[:-1], [2]], 0), seed)


def test_tasks_are_goals_in_the_square_and_repeat_under_a_seed():
    family = Navigation2D()
    tasks = family.sample_tasks(1000, seed=3).numpy()
    assert tasks.shape == (1000, 2) and np.all(np.abs(tasks) <= 0.5)
    np.testing.assert_array_equal(tasks, family.sample_tasks(1000, seed=3))
    assert not np.array_equal(tasks, family.sample_tasks(1000, seed=4))


def test_dynamics_reward_and_termination_follow_the_paper():
    family = Navigation2D(horizon=5)
    goals = tf.constant([[0.2, 0.2], [-0.5, 0.5]])
    # Actions are clipped to [-1, 1] and scaled by 0.1: (3, 3) moves by (0.1, 0.1) per step.
    rollouts = family.rollouts(constant_policy([3.0, 3.0]), goals, 1, seed=0)
    positions = 0.1 * np.arange(5)[:, None] * np.ones(2)
    np.testing.assert_allclose(rollouts.observations[0, 0], positions, atol=1e-6)
    # The first task reaches its goal at step 2 (position 0.2, 0.2): that step counts, no more.
    np.testing.assert_array_equal(rollouts.mask[0, 0], [1, 1, 0, 0, 0])
    np.testing.assert_allclose(rollouts.rewards[0, 0], [-np.hypot(0.1, 0.1), 0, 0, 0, 0], atol=1e-6)
    moved = positions + 0.1
    expected = -np.hypot(moved[:, 0] + 0.5, moved[:, 1] - 0.5)
    np.testing.assert_allclose(rollouts.rewards[1, 0], expected, atol=1e-6)
    np.testing.assert_allclose(rollouts.returns()[1, 0], expected.sum(), atol=1e-5)


def test_rollouts_repeat_under_a_seed_and_differ_across_seeds():
    family = Navigation2D(horizon=20)
    tasks = family.sample_tasks(3, seed=0)
    first = family.rollouts(noisy_policy, tasks, 4, seed=7)
    again = family.rollouts(noisy_policy, tasks, 4, seed=7)
    other = family.rollouts(noisy_policy, tasks, 4, seed=8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.actions, other.actions)
    assert first.observations.shape == (3, 4, 20, 2) and first.rewards.shape == (3, 4, 20)


def test_the_whole_rollout_is_one_graph_with_the_policy_traced_once():
    calls = []

    def act(observations, seed):
        calls.append(None)
        return noisy_policy(observations, seed)

    family = Navigation2D(horizon=30)
    rollout = tf.function(lambda tasks: family.rollouts(act, tasks, 5, seed=0).returns())
    rollout(family.sample_tasks(2, seed=0))
    rollout(family.sample_tasks(2, seed=1))
    assert len(calls) == 1  # 30 steps, two calls: no Python per step


def test_task_batches_are_a_pure_function_of_seed_and_index():
    family = Navigation2D()
    stream = family.task_batches(meta_batch_size=4, seed=0)
    first = [element["tasks"].numpy() for element in stream.take(3)]
    resumed = next(iter(stream.skip(2)))
    np.testing.assert_array_equal(resumed["tasks"], first[2])
    assert resumed["seed"].shape == (2,)


@pytest.mark.parametrize("tasks", [tf.zeros([3]), tf.zeros([3, 1])])
def test_tasks_of_the_wrong_shape_are_rejected_naming_the_family(tasks):
    with pytest.raises(ValueError, match=r"navigation_2d.*shape"):
        Navigation2D().rollouts(noisy_policy, tasks, 1, seed=0)
