"""The paper's rllab forward velocity (the robot's centre of mass) on Gymnasium's simulators."""

import numpy as np
import pytest

from tfmeta import rl
from tfmeta.rl.mujoco_families import AntDirection, HalfCheetahDirection, HalfCheetahVelocity

pytest.importorskip("gymnasium", reason="needs the rl extra: pip install 'tfmeta[rl]'")
mujoco = pytest.importorskip("mujoco", reason="needs the rl extra: pip install 'tfmeta[rl]'")
from tfmeta.rl.rllab_velocity import INFO_KEY  # noqa: E402  (needs mujoco)


def rllab_body_comvel(model, data, body: str) -> np.ndarray:
    """rllab's `get_body_comvel(body)`: after a full forward pass, each body's centre-of-mass
    velocity (`mj_objectVelocity`, world orientation) weighted by its mass and summed over the
    body's subtree, divided by the subtree's mass."""
    state = mujoco.MjData(model)
    state.qpos[:], state.qvel[:] = data.qpos, data.qvel
    mujoco.mj_forward(model, state)
    root = model.body(body).id
    momentum, mass = np.zeros(3), 0.0
    for index in range(model.nbody):
        ancestor = index
        while ancestor not in (0, root):
            ancestor = model.body_parentid[ancestor]
        if ancestor != root:
            continue
        velocity = np.zeros(6)
        mujoco.mj_objectVelocity(model, state, mujoco.mjtObj.mjOBJ_BODY, index, velocity, 0)
        momentum += model.body_mass[index] * velocity[3:]
        mass += model.body_mass[index]
    return momentum / mass


def lockstep(family_class, steps: int, seed: int = 0, task=(1.0,)):
    """One seeded episode under both velocities: (rllab env, rllab's and Gymnasium's
    (observation, reward, info) per step)."""
    envs = {
        velocity: family_class(horizon=steps, velocity=velocity).make_env(task=list(task))
        for velocity in ("rllab", "gymnasium")
    }
    action_dim = envs["rllab"].action_space.shape[0]
    actions = np.random.default_rng(seed).uniform(-1.5, 1.5, (steps, action_dim))
    steps_of = {velocity: [] for velocity in envs}
    for velocity, env in envs.items():
        env.reset(seed=seed)
        for action in actions:
            observation, reward, _, _, info = env.step(action)
            steps_of[velocity].append((observation, reward, info, action))
    return envs["rllab"], steps_of["rllab"], steps_of["gymnasium"]


@pytest.mark.parametrize("family_class", [HalfCheetahVelocity, AntDirection])
def test_the_velocity_is_rllabs_subtree_centre_of_mass_velocity_after_the_step(family_class):
    env, rllab, gymnasium = lockstep(family_class, steps=15)
    model, data = env.unwrapped.model, env.unwrapped.data
    np.testing.assert_allclose(
        rllab[-1][2][INFO_KEY], rllab_body_comvel(model, data, "torso"), rtol=1e-9, atol=1e-12
    )
    assert abs(rllab[-1][2][INFO_KEY][0] - rllab[-1][2]["x_velocity"]) > 1e-3  # not the torso's
    for (obs, _, info, _), (gym_obs, _, gym_info, _) in zip(rllab, gymnasium):
        np.testing.assert_array_equal(obs, gym_obs)  # the simulation is unchanged
        assert info["x_velocity"] == gym_info["x_velocity"]


def test_the_centre_of_mass_velocity_is_the_rate_of_the_centre_of_mass():
    env, rllab, _ = lockstep(HalfCheetahVelocity, steps=40, seed=3)
    positions = np.array([obs[17:] for obs, *_ in rllab])  # rllab's observation ends with it
    velocities = np.array([info[INFO_KEY] for _, _, info, _ in rllab])
    rates = np.diff(positions, axis=0) / env.unwrapped.dt
    # MuJoCo's semi-implicit Euler moves the positions by the new velocities (and the centre of
    # mass is not linear in the positions)
    np.testing.assert_allclose(rates, velocities[1:], atol=0.03)  # the stale ones are 0.09 off


@pytest.mark.parametrize(
    "family_class, reward_of",
    [
        (HalfCheetahVelocity, lambda v, info: -abs(v - 1.0) + info["reward_ctrl"]),
        (HalfCheetahDirection, lambda v, info: v + info["reward_ctrl"]),
    ],
)
def test_the_reward_scores_the_centre_of_mass_velocity(family_class, reward_of):
    _, rllab, gymnasium = lockstep(family_class, steps=10)
    for (_, reward, info, _), (_, gym_reward, gym_info, _) in zip(rllab, gymnasium):
        assert reward == pytest.approx(reward_of(info[INFO_KEY][0], info), abs=1e-9)
        assert gym_reward == pytest.approx(reward_of(gym_info["x_velocity"], gym_info), abs=1e-9)


def test_the_velocity_is_part_of_the_familys_config():
    family = rl.families.get(HalfCheetahVelocity(velocity="rllab").get_config())
    assert family.velocity == "rllab"
    assert HalfCheetahVelocity().get_config()["velocity"] == "gymnasium"


def test_an_unknown_velocity_is_refused():
    with pytest.raises(ValueError, match=r"`velocity` to be one of \['gymnasium', 'rllab'\]"):
        HalfCheetahVelocity(velocity="torso")
