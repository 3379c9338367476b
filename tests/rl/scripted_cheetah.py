"""`ScriptedCheetah`: HalfCheetah velocity whose environments fail on cue, for the failure tests.

What an environment does is decided by its task's velocity (`ENDS`, `RAISES`, ...), so a worker
process, which receives a pickled copy of the family, fails exactly as this process would; or,
with `raise_from_call=n`, every environment raises from the family's n-th `rollouts` call on
(counted in this process: a failure partway through training).
"""

import numpy as np
import pytest

from tfmeta.rl.mujoco_families import HalfCheetahVelocity

gymnasium = pytest.importorskip("gymnasium", reason="needs the rl extra: pip install 'tfmeta[rl]'")
pytest.importorskip("mujoco", reason="needs the rl extra: pip install 'tfmeta[rl]'")

# What an environment of task [velocity] does at step 3, on reset or when given the task (else
# it runs normally).
ENDS, RAISES, RETURNS_NAN, RAISES_ON_RESET, REFUSED = 0.3, 0.7, 0.8, 0.9, 0.95


class _Scripted(gymnasium.Wrapper):
    """Ends its trajectory, raises or returns NaN at step 3, or raises on reset, by the task
    of `outer`; raises at step 3 whatever the task once `family` is due to fail."""

    def __init__(self, env, outer, family):
        super().__init__(env)
        self.outer, self.family, self.steps = outer, family, 0

    def reset(self, **kwargs):
        self.steps = 0
        if round(float(self.outer.task[0]), 6) == RAISES_ON_RESET:
            raise RuntimeError("no such start")
        return self.env.reset(**kwargs)

    def step(self, action):
        self.steps += 1
        observation, reward, terminated, truncated, info = self.env.step(action)
        task = round(float(self.outer.task[0]), 6)
        if self.steps == 3 and task == ENDS:
            terminated = True
        if self.steps == 3 and (task == RAISES or self.family.due_to_fail()):
            raise RuntimeError("simulator blew up")
        if self.steps == 3 and task == RETURNS_NAN:
            observation = np.full_like(observation, np.nan)
        return observation, reward, terminated, truncated, info


class _RefusingTask(gymnasium.Wrapper):
    """Raises when set to the task `REFUSED` (as a simulator given a task it cannot build)."""

    def set_task(self, task):
        if round(float(task[0]), 6) == REFUSED:
            raise ValueError("no such velocity")
        self.env.set_task(task)


class ScriptedCheetah(HalfCheetahVelocity):
    """HalfCheetah velocity whose environments follow `_Scripted` and `_RefusingTask` (module
    level: it pickles)."""

    def __init__(self, raise_from_call: int | None = None, **kwargs):
        self.raise_from_call, self.calls = raise_from_call, 0
        super().__init__(**kwargs)

    def due_to_fail(self) -> bool:
        """Whether this `rollouts` call is the `raise_from_call`-th or a later one."""
        return self.raise_from_call is not None and self.calls >= self.raise_from_call

    def make_env(self, task=None):
        env = super().make_env(task)
        env.env = _Scripted(env.env, env, self)
        return _RefusingTask(env)

    def rollouts(self, act, tasks, rollouts_per_task, seed):
        self.calls += 1
        return super().rollouts(act, tasks, rollouts_per_task, seed)
