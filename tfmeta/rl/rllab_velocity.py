"""The forward velocity of the paper's rllab rewards, on Gymnasium's MuJoCo simulators.

rllab's locomotion rewards (`half_cheetah_env_rand.py`, `ant_env_rand_direc.py`
of Finn et al. 2017's code) score `get_body_comvel("torso")`: the velocity of
the centre of mass of the torso's subtree, which is the whole robot, at the
state after the step (rllab's `body_comvels`: the bodies' centre-of-mass
velocities weighted by their masses). Gymnasium's rewards score the torso's
own displacement over the step (`info["x_velocity"]`). The two differ by
the legs' motion relative to the torso.
"""

from __future__ import annotations

import gymnasium
import mujoco
import numpy as np

from tfmeta.rl.rllab_observation import propagate_positions

INFO_KEY = "centre_of_mass_velocity"


class CentreOfMassVelocity(gymnasium.Wrapper):
    """Adds the robot's centre-of-mass velocity after each step to `info[INFO_KEY]`.

    The velocity (world x, y, z) is that of the subtree rooted at `body`,
    computed as rllab computed it, on a scratch copy of the state (positions
    and velocities) whose kinematics are propagated, so the environment's
    own simulation and `info` are left as they are.

    Args:
        env: a Gymnasium MuJoCo environment (`env.unwrapped` has `model`, `data`).
        body: the subtree's root body (rllab's `"torso"`).
    """

    def __init__(self, env: gymnasium.Env, body: str = "torso"):
        super().__init__(env)
        base = self.env.unwrapped  # walks the wrappers: once, not per step
        self._model, self._data = base.model, base.data
        self._body = self._model.body(body).id
        self._state = mujoco.MjData(self._model)

    def velocity(self) -> np.ndarray:
        """The subtree's centre-of-mass velocity at the environment's current state."""
        model, data, state = self._model, self._data, self._state
        propagate_positions(model, data, state)
        mujoco.mj_comVel(model, state)
        mujoco.mj_subtreeVel(model, state)
        return state.subtree_linvel[self._body].copy()

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation, reward, terminated, truncated, {**info, INFO_KEY: self.velocity()}
