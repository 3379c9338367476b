"""The paper's baselines: `TaskObserved` (the oracle's family) and `PolicyMAML(inner_steps=0)`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import small_learner, tiny_policy
from tfmeta import rl
from tfmeta.rl.task_observed import append_task

TASKS = tf.constant([[0.3, -0.2], [-0.4, 0.1]])


def _noisy(actions, seed):
    return actions + 0.1 * tf.random.stateless_normal(tf.shape(actions), seed)


def test_rollouts_are_the_wrapped_familys_with_the_task_appended_and_shown_to_the_policy():
    """A policy steering toward the goal it observes rolls out as one given the goal directly."""
    base = rl.Navigation2D(horizon=6)

    def toward_observed_goal(observations, seed):
        return _noisy(observations[..., 2:] - observations[..., :2], seed)

    def toward_known_goal(observations, seed):
        return _noisy(TASKS[:, None, :] - observations, seed)

    observed = rl.TaskObserved(base).rollouts(toward_observed_goal, TASKS, 3, seed=4)
    direct = base.rollouts(toward_known_goal, TASKS, 3, seed=4)
    assert observed.observations.shape == (2, 3, 6, 4)
    np.testing.assert_array_equal(observed.observations[..., :2], direct.observations)
    np.testing.assert_array_equal(
        observed.observations[..., 2:], np.broadcast_to(TASKS[:, None, None, :], (2, 3, 6, 2))
    )
    for name in ("actions", "rewards", "mask"):
        np.testing.assert_array_equal(getattr(observed, name), getattr(direct, name))


def test_a_simulator_familys_observations_gain_the_task_too():
    pytest.importorskip("gymnasium", reason="needs the rl extra: pip install 'tfmeta[rl]'")
    pytest.importorskip("mujoco", reason="needs the rl extra: pip install 'tfmeta[rl]'")
    base = rl.families.get({"name": "halfcheetah_vel", "horizon": 4})
    family = rl.TaskObserved(base)
    assert family.observation_dim == base.observation_dim + 1
    tasks = tf.constant([[0.5], [1.5]])
    shown = []

    def still(observations, seed):
        shown.append(np.asarray(observations))
        return tf.zeros(tf.concat([tf.shape(observations)[:-1], [6]], 0))

    observed = family.rollouts(still, tasks, 2, seed=1)
    direct = base.rollouts(lambda o, s: tf.zeros(o.shape[:-1] + (6,)), tasks, 2, seed=1)
    np.testing.assert_array_equal(observed.observations[..., :-1], direct.observations)
    np.testing.assert_array_equal(observed.observations[..., -1, None], np.broadcast_to(
        np.asarray(tasks)[:, None, None, :], (2, 2, 4, 1)))
    assert all(step.shape == (2, 2, base.observation_dim + 1) for step in shown)
    np.testing.assert_array_equal(shown[0][..., -1], [[0.5, 0.5], [1.5, 1.5]])


def test_append_task_broadcasts_over_every_axis_between_task_and_features():
    observations = tf.zeros([2, 3, 5, 7])
    appended = append_task(observations, TASKS)
    assert appended.shape == (2, 3, 5, 9)
    np.testing.assert_array_equal(appended[1, 2, 4, 7:], TASKS[1])


def test_the_family_is_rebuilt_from_its_config_and_saved_with_a_learner(tmp_path):
    family = rl.TaskObserved(rl.Navigation2D(horizon=9))
    rebuilt = rl.families.get(family.get_config())
    assert isinstance(rebuilt, rl.TaskObserved)
    assert rebuilt.family.horizon == 9 and rebuilt.observation_dim == 4
    keras.utils.set_random_seed(0)
    learner = rl.PolicyMAML(rl.gaussian_mlp_policy(4, 2, hidden_units=(6,)), family, inner_steps=0)
    learner.save(tmp_path / "oracle.keras")
    loaded = keras.saving.load_model(tmp_path / "oracle.keras")
    assert isinstance(loaded.family, rl.TaskObserved) and loaded.inner_steps == 0
    for a, b in zip(learner.policy.get_weights(), loaded.policy.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_input_is_refused_naming_what_is_expected():
    with pytest.raises(ValueError, match="Expected `family` to be a TaskFamily"):
        rl.TaskObserved("navigation_2d")
    with pytest.raises(ValueError, match="taking 4 observation features"):
        rl.PolicyMAML(tiny_policy(dtype="float32"), rl.TaskObserved(rl.Navigation2D()))
    with pytest.raises(ValueError, match=r"`inner_steps` to be an integer >= 0"):
        small_learner(inner_steps=-1)


def test_without_inner_steps_a_meta_iteration_is_one_trust_region_step_on_one_sampling():
    plain = small_learner(inner_steps=0)
    initial = plain.policy.get_weights()
    plain.compile(optimizer=rl.TRPO(max_kl=0.01))
    history = plain.fit(
        plain.family.task_batches(2, seed=0), steps_per_epoch=2, epochs=1, verbose=0
    ).history
    assert history["return_before"] == history["return_after"]  # nothing adapts
    assert 0.0 < history["kl"][0] <= 0.01
    assert any(not np.array_equal(a, b) for a, b in zip(initial, plain.policy.get_weights()))


def test_an_oracle_learns_navigation_faster_than_a_policy_blind_to_the_goal():
    """Seeing the goal, one policy solves every task; blind, it can only head for their mean."""
    returns = {}
    for observe in (False, True):
        base = rl.Navigation2D(horizon=20)
        family = rl.TaskObserved(base) if observe else base
        keras.utils.set_random_seed(0)
        policy = rl.gaussian_mlp_policy(family.observation_dim, 2, hidden_units=(32, 32))
        learner = rl.PolicyMAML(
            policy, family, inner_steps=0, rollouts_per_task=5, eval_inner_steps=0,
            eval_inner_learning_rate=[],
        )
        learner.compile(optimizer=rl.TRPO(max_kl=0.05))
        learner.fit(family.task_batches(10, seed=0), steps_per_epoch=15, epochs=1, verbose=0)
        returns[observe] = learner.evaluate(
            family.task_batches(40, seed=1, num_batches=1), return_dict=True, verbose=0
        )["return_step_0"]
    assert returns[True] > returns[False] + 3.0, returns
