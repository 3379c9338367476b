"""`TaskReward`: a Gymnasium wrapper that rewards an environment's steps for one task."""

from __future__ import annotations

from typing import Callable

import gymnasium
import numpy as np

# reward(task, info, action) -> float, from the wrapped environment's `info` dict.
RewardFn = Callable[[np.ndarray, dict, np.ndarray], float]


class TaskReward(gymnasium.Wrapper):
    """Replaces an environment's reward by a task's reward, computed from the step's `info`.

    Gymnasium's MuJoCo environments report the quantities a locomotion task
    is scored on (`x_velocity`, `reward_ctrl`, ...) in `info`; the task
    (a target velocity, a direction) is an attribute, set with `set_task`
    before a reset, so one environment serves every task of a family.

    Args:
        env: the Gymnasium environment.
        reward_fn: `reward_fn(task, info, action) -> float`.
        task: the first task (a 1-D array).

    Example:

    ```python
    import gymnasium, numpy as np
    from tfmeta.rl.task_reward import TaskReward

    env = TaskReward(gymnasium.make("HalfCheetah-v5"),
                     lambda task, info, action: -abs(info["x_velocity"] - task[0]), np.array([1.0]))
    env.reset(seed=0)
    env.step(env.action_space.sample())   # reward: -|velocity - 1|
    ```
    """

    def __init__(self, env: gymnasium.Env, reward_fn: RewardFn, task: np.ndarray):
        super().__init__(env)
        self.reward_fn = reward_fn
        self.task = np.asarray(task, dtype=np.float64)

    def set_task(self, task: np.ndarray) -> None:
        """Makes the following steps reward `task`."""
        self.task = np.asarray(task, dtype=np.float64)

    def step(self, action):
        observation, _, terminated, truncated, info = self.env.step(action)
        return (
            observation,
            float(self.reward_fn(self.task, info, action)),
            terminated,
            truncated,
            info,
        )
