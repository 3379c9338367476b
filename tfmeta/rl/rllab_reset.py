"""The initial-state noise of the paper's rllab MuJoCo environments, on Gymnasium's simulators.

rllab's `MujocoEnv.reset_mujoco` (which Finn et al. 2017's environments
use) starts each episode at the model's initial positions plus normal noise
of standard deviation 0.01 and its initial velocities plus normal noise of
standard deviation 0.1. Gymnasium's v5 locomotion environments draw the
positions' noise uniformly from [-0.1, 0.1] (standard deviation 0.058, six
times rllab's) and the velocities' as rllab does.
"""

from __future__ import annotations

import gymnasium

POSITION_STD = 0.01
VELOCITY_STD = 0.1


class RllabReset(gymnasium.Wrapper):
    """Replaces the state a Gymnasium MuJoCo environment resets to by one drawn as rllab's.

    The noise comes from the environment's own generator (`np_random`,
    seeded by `reset(seed=...)`), so episodes stay reproducible.

    Args:
        env: a Gymnasium MuJoCo environment (`env.unwrapped` is a `MujocoEnv`).
    """

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed, options=options)
        base = self.env.unwrapped
        noise = base.np_random
        base.set_state(
            base.init_qpos + POSITION_STD * noise.standard_normal(base.model.nq),
            base.init_qvel + VELOCITY_STD * noise.standard_normal(base.model.nv),
        )
        # the observation and reset info of the state set here (Gymnasium's own methods)
        return base._get_obs(), base._get_reset_info()
