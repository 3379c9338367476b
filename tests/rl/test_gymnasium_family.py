"""MuJoCo families on Gymnasium: batched rollouts, rewards, failures reported with their task."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import uniform_actions
from tests.rl.scripted_cheetah import RAISES, RETURNS_NAN, ScriptedCheetah
from tfmeta import checkpointing, rl
from tfmeta.rl.gymnasium_family import RolloutError
from tfmeta.rl.mujoco_families import AntDirection, HalfCheetahDirection, HalfCheetahVelocity

pytest.importorskip("gymnasium", reason="needs the rl extra: pip install 'tfmeta[rl]'")
pytest.importorskip("mujoco", reason="needs the rl extra: pip install 'tfmeta[rl]'")


def test_rollouts_repeat_under_a_seed_and_differ_across_seeds():
    family = HalfCheetahVelocity(horizon=6)
    tasks = family.sample_tasks(2, seed=0)
    first = family.rollouts(uniform_actions, tasks, 2, seed=3)
    again = family.rollouts(uniform_actions, tasks, 2, seed=3)
    other = family.rollouts(uniform_actions, tasks, 2, seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.observations, other.observations)
    assert first.observations.shape == (2, 2, 6, 20) and first.actions.shape == (2, 2, 6, 6)


def test_the_policy_is_called_once_per_step_for_all_environments():
    shapes = []

    def act(observations, seed):
        shapes.append(tuple(observations.shape))
        return uniform_actions(observations, seed)

    family = HalfCheetahVelocity(horizon=4)
    family.rollouts(act, family.sample_tasks(3, seed=0), 5, seed=0)
    assert shapes == [(3, 5, 20)] * 4


def test_velocity_reward_is_the_papers_from_gymnasiums_info():
    env = HalfCheetahVelocity(horizon=10).make_env(task=[1.5])
    env.reset(seed=0)
    action = np.linspace(-2.0, 2.0, 6).astype(np.float32)  # clipped to [-1, 1] before the step
    _, reward, _, _, info = env.step(action)
    clipped = np.clip(action, -1.0, 1.0)
    assert reward == pytest.approx(-abs(info["x_velocity"] - 1.5) - 0.05 * np.sum(clipped**2))


@pytest.mark.parametrize(
    "family, seconds_per_action",
    [(HalfCheetahVelocity, 0.01), (HalfCheetahDirection, 0.01), (AntDirection, 0.02)],
)
def test_one_action_lasts_as_long_as_in_the_papers_rllab_models(family, seconds_per_action):
    # rllab steps its MuJoCo model once per action (timestep 0.01 s for HalfCheetah, 0.02 s for
    # Ant); Gymnasium's default of 5 steps per action would make an episode 5x (2.5x) longer.
    env = family(horizon=3).make_env()
    assert env.unwrapped.dt == pytest.approx(seconds_per_action)


def test_ant_direction_reward_and_termination():
    family = AntDirection(horizon=5)
    env = family.make_env(task=[-1.0])
    env.reset(seed=1)
    _, reward, _, _, info = env.step(np.zeros(8, np.float32))
    assert reward == pytest.approx(-info["x_velocity"] + info["reward_contact"] + 0.05)
    rollouts = family.rollouts(
        lambda o, s: tf.zeros(tf.concat([tf.shape(o)[:-1], [8]], 0)),
        family.sample_tasks(1, 0),
        1,
        0,
    )
    assert rollouts.observations.shape == (1, 1, 5, family.observation_dim)
    np.testing.assert_array_equal(rollouts.mask, np.ones((1, 1, 5)))


@pytest.mark.parametrize(
    "task, message",
    [
        (RAISES, r"raised at step 2 .*task \[0\.7\].*halfcheetah_vel.*simulator blew up"),
        (RETURNS_NAN, r"finite observations.*step 2 .*task \[0\.8\].*halfcheetah_vel"),
    ],
)
def test_a_failing_environment_is_reported_with_its_task(task, message):
    family = ScriptedCheetah(horizon=6)
    with pytest.raises(RolloutError, match=message):
        family.rollouts(uniform_actions, tf.constant([[task]]), 2, seed=0)


def test_a_failure_mid_training_keeps_the_last_checkpoint(tmp_path):
    family = ScriptedCheetah(raise_from_call=3, horizon=5)  # two rollouts calls per meta-iteration
    keras.utils.set_random_seed(0)
    policy = rl.gaussian_mlp_policy(20, 6, hidden_units=(8,))
    learner = rl.PolicyMAML(policy, family, rollouts_per_task=2, first_order=True, outer_steps=1)
    learner.compile(optimizer=keras.optimizers.SGD(1e-3))
    with pytest.raises(RolloutError, match="halfcheetah_vel"):
        learner.fit(
            family.task_batches(2, seed=0),
            steps_per_epoch=1,
            epochs=3,
            callbacks=[checkpointing.MetaCheckpoint(tmp_path)],
            verbose=0,
        )
    assert checkpointing.latest_step(tmp_path) == 1
    saved = [v.numpy() for v in policy.trainable_variables]
    restored = rl.gaussian_mlp_policy(20, 6, hidden_units=(8,))
    tf.train.Checkpoint(model_variables=list(restored.variables)).read(
        tf.train.latest_checkpoint(tmp_path)
    ).expect_partial()
    for a, b in zip(saved, restored.trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())


def test_a_policy_for_another_action_space_is_rejected():
    with pytest.raises(ValueError, match=r"12 outputs.*halfcheetah_vel.*Received.*4 outputs"):
        rl.PolicyMAML(rl.gaussian_mlp_policy(20, 2, hidden_units=(4,)), "halfcheetah_vel")


def test_a_capped_family_runs_its_trajectories_in_waves_over_few_environments():
    family = HalfCheetahVelocity(horizon=4, max_environments=2)
    tasks = family.sample_tasks(2, seed=0)
    first = family.rollouts(uniform_actions, tasks, 3, seed=1)  # 6 trajectories, 3 waves
    assert len(family._envs) == 2
    again = family.rollouts(uniform_actions, tasks, 3, 1)
    np.testing.assert_array_equal(first.observations, again.observations)
    assert first.observations.shape == (2, 3, 4, 20) and np.all(first.mask.numpy() == 1.0)
    starts = first.observations.numpy()[:, :, 0].reshape(6, -1)
    assert len({row.tobytes() for row in starts}) == 6  # every trajectory reset with its own seed
