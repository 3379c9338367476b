"""The paper's rllab observations on Gymnasium's MuJoCo environments."""

import numpy as np
import pytest

from tfmeta import rl
from tfmeta.rl.mujoco_families import AntDirection, HalfCheetahDirection, HalfCheetahVelocity

pytest.importorskip("gymnasium", reason="needs the rl extra: pip install 'tfmeta[rl]'")
mujoco = pytest.importorskip("mujoco", reason="needs the rl extra: pip install 'tfmeta[rl]'")


def lockstep(family_class, steps: int, seed: int = 0):
    """The same seeded episode under both observations: (rllab env, its observations, Gymnasium's
    observations, both rewards)."""
    rllab_env = family_class(horizon=steps).make_env(task=[1.0])
    gym_env = family_class(horizon=steps, observation="gymnasium").make_env(task=[1.0])
    action_dim = rllab_env.action_space.shape[0]
    actions = np.random.default_rng(seed).uniform(-1.5, 1.5, (steps, action_dim))
    observed = {
        "rllab": [rllab_env.reset(seed=seed)[0]],
        "gymnasium": [gym_env.reset(seed=seed)[0]],
    }
    rewards = {"rllab": [], "gymnasium": []}
    for action in actions:
        for key, env in (("rllab", rllab_env), ("gymnasium", gym_env)):
            observation, reward, *_ = env.step(action)
            observed[key].append(observation)
            rewards[key].append(reward)
    return rllab_env, np.array(observed["rllab"]), np.array(observed["gymnasium"]), rewards


def forwarded(env):
    """A copy of the environment's state now, through a full forward pass (`mj_step` leaves body
    positions one step behind)."""
    model, data = env.unwrapped.model, env.unwrapped.data
    copy = mujoco.MjData(model)
    copy.qpos[:], copy.qvel[:] = data.qpos, data.qvel
    mujoco.mj_forward(model, copy)
    return copy


def test_half_cheetah_observes_gymnasiums_state_and_its_current_centre_of_mass():
    env, rllab, gym, rewards = lockstep(HalfCheetahVelocity, steps=30)
    assert rllab.shape == (31, 20) and gym.shape == (31, 17)
    np.testing.assert_array_equal(rllab[:, :17], gym)  # the simulation is unchanged
    np.testing.assert_array_equal(rewards["rllab"], rewards["gymnasium"])
    torso = env.unwrapped.model.body("torso").id
    np.testing.assert_allclose(rllab[-1, 17:], forwarded(env).subtree_com[torso], atol=1e-12)
    stale = env.unwrapped.data.subtree_com[torso]  # what mj_step left: the state one step back
    assert np.abs(rllab[-1, 17:] - stale).max() > 1e-6


def test_ant_observes_rllabs_125_features():
    env, rllab, gym, rewards = lockstep(AntDirection, steps=20)
    assert rllab.shape == (21, 125) and gym.shape == (21, 105)
    np.testing.assert_array_equal(rewards["rllab"], rewards["gymnasium"])
    data, model = env.unwrapped.data, env.unwrapped.model
    torso = model.body("torso").id
    last = rllab[-1]
    np.testing.assert_array_equal(last[:15], data.qpos)  # x and y of the torso included
    np.testing.assert_array_equal(last[15:29], data.qvel)
    np.testing.assert_array_equal(last[29:113], np.clip(data.cfrc_ext, -1, 1).ravel())
    now = forwarded(env)
    np.testing.assert_allclose(last[113:122], now.xmat[torso], atol=1e-12)
    np.testing.assert_allclose(last[122:], now.subtree_com[torso], atol=1e-12)
    np.testing.assert_array_equal(rllab[:, 2:15], gym[:, :13])  # Gymnasium's qpos leaves out x, y


@pytest.mark.parametrize("family_class", [HalfCheetahVelocity, HalfCheetahDirection])
def test_the_observation_is_part_of_the_familys_config(family_class):
    family = rl.families.get(family_class(observation="gymnasium").get_config())
    assert family.observation == "gymnasium" and family.observation_dim == 17
    assert family_class().get_config()["observation"] == "rllab"


def test_an_unknown_observation_is_refused():
    with pytest.raises(ValueError, match=r"`observation` to be one of \['rllab', 'gymnasium'\]"):
        HalfCheetahVelocity(observation="pixels")
