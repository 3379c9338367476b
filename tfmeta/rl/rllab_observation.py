"""The observations of the paper's rllab MuJoCo environments, on Gymnasium's simulators.

Finn et al. 2017 trained on rllab's environments, whose observations hold
more than Gymnasium's: HalfCheetah adds the centre of mass of the torso's
subtree (the whole body: its x is how far the cheetah has run), Ant keeps
the torso's x and y and adds the torso's orientation matrix and centre of
mass. `RllabObservation` computes them from the simulator's state after
each step (as rllab's `MjModel.forward()` after stepping: of the positions
now, not the one-step-stale ones `mj_step` leaves), in the order of the
authors' environments (`rllab/envs/mujoco/half_cheetah_env_rand.py`,
`ant_env_rand_direc.py`).
"""

from __future__ import annotations

from typing import Callable

import gymnasium
import mujoco
import numpy as np

# features(model, state) -> 1-D float64 array; `state` holds the current positions (propagated),
# velocities and external forces.
FeaturesFn = Callable[[mujoco.MjModel, mujoco.MjData], np.ndarray]


def half_cheetah_features(model: mujoco.MjModel, state: mujoco.MjData) -> np.ndarray:
    """`[qpos[1:], qvel, centre of mass of the torso's subtree]`: 8 + 9 + 3 = 20 features."""
    return np.concatenate(
        [state.qpos[1:], state.qvel, state.subtree_com[model.body("torso").id]]
    )


def ant_features(model: mujoco.MjModel, state: mujoco.MjData) -> np.ndarray:
    """`[qpos, qvel, clip(cfrc_ext, -1, 1), torso orientation, torso subtree centre of mass]`.

    15 + 14 + 6 per body (the world body included: 84) + 9 + 3 = 125 features.
    """
    torso = model.body("torso").id
    return np.concatenate(
        [
            state.qpos,
            state.qvel,
            np.clip(state.cfrc_ext, -1.0, 1.0).ravel(),
            state.xmat[torso],
            state.subtree_com[torso],
        ]
    )


def propagate_positions(model: mujoco.MjModel, data: mujoco.MjData, state: mujoco.MjData) -> None:
    """Sets scratch `state` to `data`'s positions and velocities, with body positions and centres
    of mass propagated (`mj_kinematics`, `mj_comPos`), as rllab's `forward()` after a step."""
    state.qpos[:], state.qvel[:] = data.qpos, data.qvel
    mujoco.mj_kinematics(model, state)
    mujoco.mj_comPos(model, state)


class RllabObservation(gymnasium.ObservationWrapper):
    """Replaces a Gymnasium MuJoCo environment's observation by `features(model, state)`.

    After `mj_step`, body positions and centres of mass still describe the
    state before the step. The features are therefore read from a scratch
    copy of the state (positions, velocities, external forces) whose
    positions are propagated (`mj_kinematics`, `mj_comPos`); the
    environment's own data is left as it is, so the simulation and
    Gymnasium's `info` (Ant's velocity is read from body positions) are
    unchanged.

    Args:
        env: a Gymnasium MuJoCo environment (`env.unwrapped` has `model`, `data`).
        features: `features(model, state) -> np.ndarray` (`FeaturesFn`).
    """

    def __init__(self, env: gymnasium.Env, features: FeaturesFn):
        super().__init__(env)
        self._features = features
        base = self.env.unwrapped  # walks the wrappers: once, not per step
        self._model, self._data = base.model, base.data
        self._state = mujoco.MjData(self._model)
        size = self._read().size
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (size,), np.float64)

    def _read(self) -> np.ndarray:
        model, data, state = self._model, self._data, self._state
        state.cfrc_ext[:] = data.cfrc_ext
        propagate_positions(model, data, state)
        return np.asarray(self._features(model, state), np.float64)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        del observation  # Gymnasium's own; the features come from the simulator's state
        return self._read()
