"""The paper's rllab initial-state noise on Gymnasium's MuJoCo environments."""

import numpy as np
import pytest

from tfmeta import rl
from tfmeta.rl.mujoco_families import AntDirection, HalfCheetahVelocity

pytest.importorskip("gymnasium", reason="needs the rl extra: pip install 'tfmeta[rl]'")
pytest.importorskip("mujoco", reason="needs the rl extra: pip install 'tfmeta[rl]'")


def initial_noise(env, seeds) -> tuple[np.ndarray, np.ndarray]:
    """The positions' and velocities' offsets from the model's initial state after each reset."""
    base = env.unwrapped
    positions, velocities = [], []
    for seed in seeds:
        env.reset(seed=seed)
        positions.append(base.data.qpos - base.init_qpos)
        velocities.append(base.data.qvel - base.init_qvel)
    return np.array(positions), np.array(velocities)


@pytest.mark.parametrize("family_class", [HalfCheetahVelocity, AntDirection])
def test_episodes_start_from_rllabs_normal_noise(family_class):
    seeds = range(150)
    positions, velocities = initial_noise(family_class(reset_noise="rllab").make_env(), seeds)
    assert positions.std() == pytest.approx(0.01, rel=0.1)
    assert abs(positions.mean()) < 0.002
    assert velocities.std() == pytest.approx(0.1, rel=0.1)
    gym_positions, _ = initial_noise(family_class().make_env(), seeds)
    assert gym_positions.std() == pytest.approx(0.2 / np.sqrt(12), rel=0.1)  # uniform in +-0.1


@pytest.mark.parametrize("observation", ["rllab", "gymnasium"])
def test_the_first_observation_is_of_the_state_drawn(observation):
    env = HalfCheetahVelocity(reset_noise="rllab", observation=observation).make_env()
    first, info = env.reset(seed=4)
    data = env.unwrapped.data
    np.testing.assert_array_equal(first[:17], np.concatenate([data.qpos[1:], data.qvel]))
    assert info["x_position"] == data.qpos[0]
    again, _ = env.reset(seed=4)
    np.testing.assert_array_equal(again, first)  # reproducible under the reset's seed
    assert not np.array_equal(env.reset(seed=5)[0], first)


def test_the_reset_noise_is_part_of_the_familys_config():
    family = rl.families.get(HalfCheetahVelocity(reset_noise="rllab").get_config())
    assert family.reset_noise == "rllab"
    assert HalfCheetahVelocity().get_config()["reset_noise"] == "gymnasium"


def test_an_unknown_reset_noise_is_refused():
    with pytest.raises(ValueError, match=r"`reset_noise` to be one of \['gymnasium', 'rllab'\]"):
        HalfCheetahVelocity(reset_noise="none")
