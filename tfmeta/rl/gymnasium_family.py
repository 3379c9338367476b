"""`GymnasiumTaskFamily`: a task family on a Gymnasium environment, rolled out in batches.

Needs the `rl` extra (`pip install 'tfmeta[rl]'`: Gymnasium and MuJoCo),
imported when a family first builds an environment.
"""

from __future__ import annotations

import contextlib
import types
import warnings
import weakref

import numpy as np
import tensorflow as tf

from tfmeta.argument_validation import check_integer
from tfmeta.rl.distributions import DiagonalGaussian
from tfmeta.rl.environment_processes import (
    EnvironmentProcess,
    WorkerExited,
    reset_environments,
    step_environments,
)
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_family import ActFn, TaskFamily, as_seed, fold_seed


class RolloutError(RuntimeError):
    """An environment failed during a rollout (it raised, or returned a non-finite observation)."""


def import_gymnasium() -> types.ModuleType:
    """`gymnasium`, or an ImportError naming the extra that installs it."""
    try:
        import gymnasium
        import mujoco  # noqa: F401  (Gymnasium's MuJoCo environments run on it)
    except ImportError as error:
        raise ImportError(
            "Gymnasium task families need Gymnasium and MuJoCo: `pip install 'tfmeta[rl]'`. "
            f"({error})"
        ) from error
    return gymnasium


@contextlib.contextmanager
def _mujoco_warnings_as_python_warnings():
    """Routes MuJoCo's warnings (e.g. about Gymnasium's model files) to `warnings.warn`.

    MuJoCo's own handler prints them and appends them to `MUJOCO_LOG.TXT` in
    the working directory; the previous handler is restored afterwards.
    """
    import mujoco

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: warnings.warn(f"MuJoCo: {message}", RuntimeWarning))
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


class GymnasiumTaskFamily(TaskFamily):
    """Base class of the families on a Gymnasium environment with a per-task reward.

    `rollouts` steps one environment per trajectory (`tasks x
    rollouts_per_task` environments, kept between calls) in lockstep: at each
    step the policy is evaluated once for all of them (one compiled call),
    then each environment that has not terminated takes its action. The
    environments are stepped from a plain Python loop rather than through
    `gymnasium.vector.SyncVectorEnv` (which also loops in Python), so that a
    terminated trajectory stops being simulated, and an environment that
    raises or returns a non-finite observation is reported with its task
    (`RolloutError`). Each environment is reset with its own seed, derived
    from the rollout seed, so rollouts are reproducible.

    Environments that are costly to hold (Meta-World's) are capped by
    `max_environments`: the trajectories then run in waves of at most that
    many environments, reused from wave to wave.

    With `processes=N > 1` each wave's environments are split evenly between
    this process and `N - 1` worker processes
    (`tfmeta.rl.environment_processes`, started on the first rollouts and
    kept until `close()`), which step theirs while this process steps its
    own: on a machine with N free cores sampling takes about 1/N of the time.
    The rollouts are the same numbers for every N (each environment keeps its
    seed and receives the same actions); `processes` is a setting of the
    machine, not of the family, and stays out of `get_config()`. Workers are
    started by `spawn`, so, as for any such `multiprocessing` program, a
    script must start its work under `if __name__ == "__main__":`. Each
    worker imports tfmeta (TensorFlow) and holds its environments.

    Subclasses set `name`, `env_id`, `task_dim`, and implement
    `_draw_tasks` and `reward(task, info, action)`; `env_kwargs` are passed
    to `gymnasium.make` (cost weights).

    Args:
        horizon: steps per trajectory (Gymnasium's `TimeLimit`).
        max_environments: the most environments held at once (None: one
            per trajectory of a call).
        processes: the processes that step the environments (1: this one only).
    """

    env_id: str
    env_kwargs: dict = {}

    def __init__(
        self, horizon: int = 200, max_environments: int | None = None, processes: int = 1
    ):
        self.max_environments = check_integer("max_environments", max_environments, allow_none=True)
        self.horizon = check_integer("horizon", horizon)
        self.processes = check_integer("processes", processes)
        self._envs: list = []
        self._workers: list[EnvironmentProcess] = []
        weakref.finalize(self, _close_workers, self._workers)  # workers end with the family
        probe = self.make_env()
        self.observation_dim = int(np.prod(probe.observation_space.shape))
        space = probe.action_space
        if not hasattr(space, "low") or len(space.shape) != 1:
            raise ValueError(
                f"Expected a 1-D continuous (Box) action space from {self.env_id}. "
                f"Received: {space}"
            )
        self.distribution = DiagonalGaussian(int(space.shape[0]))
        self._envs.append(probe)

    def reward(self, task: np.ndarray, info: dict, action: np.ndarray) -> float:
        """The task's reward for one step, from the environment's `info`."""
        raise NotImplementedError

    def wrap_environment(self, env):
        """The wrappers a family puts around `gymnasium.make`'s environment (none here).

        They sit inside the action clipping and the task reward, so that the
        reward still reads the environment's own `info`.
        """
        return env

    def make_env(self, task: np.ndarray | None = None):
        """A Gymnasium environment that rewards `task` (`env.set_task(other)` switches it).

        Actions are clipped to the action space (`gymnasium.wrappers.ClipAction`);
        episodes are truncated at `horizon` steps. MuJoCo's warnings become
        Python warnings (MuJoCo would also write them to `MUJOCO_LOG.TXT` in
        the working directory).
        """
        gymnasium = import_gymnasium()
        from tfmeta.rl.task_reward import TaskReward

        with _mujoco_warnings_as_python_warnings():
            env = gymnasium.make(
                self.env_id,
                max_episode_steps=self.horizon,
                disable_env_checker=True,
                **self.env_kwargs,
            )
        env = gymnasium.wrappers.ClipAction(self.wrap_environment(env))
        initial = np.zeros(self.task_dim) if task is None else np.asarray(task)
        return TaskReward(env, self.reward, initial)

    def _environments(self, count: int) -> list:
        while len(self._envs) < count:
            self._envs.append(self.make_env())
        return self._envs[:count]

    def _worker_processes(self, count: int) -> list[EnvironmentProcess]:
        while len(self._workers) < count:
            self._workers.append(EnvironmentProcess(self))
        return self._workers[:count]

    def close(self) -> None:
        """Stops the worker processes and closes the environments (later rollouts reopen them)."""
        _close_workers(self._workers)
        for env in self._envs:
            env.close()
        self._envs.clear()

    def __getstate__(self) -> dict:
        """The family without its environments and workers (what a worker process receives)."""
        state = dict(self.__dict__)
        state["_envs"], state["_workers"] = [], []
        return state

    def _fail(self, message: str, task: np.ndarray, index: int, error: Exception | None = None):
        task_text = np.array2string(np.asarray(task), precision=4)
        raise RolloutError(
            f"{message} in a rollout of task {task_text} (task family '{self.name}', "
            f"{self.env_id}, environment {index})" + (f": {error!r}" if error else "")
        ) from error

    def rollouts(
        self, act: ActFn, tasks: tf.Tensor, rollouts_per_task: int, seed: int | tf.Tensor
    ) -> Rollouts:
        task_values = self.check_tasks(tasks).numpy()
        count = len(task_values) * rollouts_per_task
        action_seed, reset_seed = tf.unstack(
            tf.random.experimental.stateless_split(as_seed(seed), 2)
        )
        reset_seeds = np.random.SeedSequence(
            reset_seed.numpy().view(np.uint64).tolist()
        ).generate_state(count)
        env_tasks = np.repeat(task_values, rollouts_per_task, axis=0)
        shape = (count, self.horizon)
        arrays = Rollouts(
            observations=np.zeros(shape + (self.observation_dim,), np.float32),
            actions=np.zeros(shape + (self.distribution.action_dim,), np.float32),
            rewards=np.zeros(shape, np.float32),
            mask=np.zeros(shape, np.float32),
        )
        width = count if self.max_environments is None else self.max_environments
        for wave, start in enumerate(range(0, count, width)):
            members = np.arange(start, min(start + width, count))
            step_seeds = tf.random.experimental.stateless_split(
                fold_seed(action_seed, wave), self.horizon
            )
            self._run_wave(
                act, members, env_tasks, reset_seeds, step_seeds, arrays, rollouts_per_task
            )
        split = (len(task_values), rollouts_per_task)
        return Rollouts(*(tf.constant(a.reshape(split + a.shape[1:])) for a in arrays))

    def _run_wave(self, act, members, env_tasks, reset_seeds, step_seeds, arrays, per_task):
        """Steps the trajectories `members` (indices into `env_tasks`) to the end, in lockstep.

        The policy is evaluated for every trajectory of the call (its input
        keeps the `[tasks, rollouts, features]` layout); only the members'
        environments step and only their rows of `arrays` are written. The
        members are split into groups: the first is stepped here, each other
        one by a worker process meanwhile.
        """
        groups = np.array_split(members, min(self.processes, len(members)))
        try:
            workers = self._worker_processes(len(groups) - 1)
            envs = self._environments(len(groups[0]))
            for worker, group in zip(workers, groups[1:]):
                worker.reset(env_tasks[group], reset_seeds[group])
            results = [reset_environments(envs, env_tasks[groups[0]], reset_seeds[groups[0]])]
            results += [worker.result() for worker in workers]
            current = np.zeros((len(env_tasks), self.observation_dim), np.float32)
            for group, result in zip(groups, results):
                if result.failure is not None:
                    position, error = result.failure
                    index = group[position]
                    self._fail("The environment raised on reset", env_tasks[index], index, error)
                current[group] = result.observations
            alive = np.zeros(len(env_tasks), bool)
            alive[members] = True
            for t in range(self.horizon):
                arrays.observations[members, t] = current[members]
                arrays.mask[members, t] = alive[members]
                step_actions = np.asarray(
                    act(current.reshape(-1, per_task, self.observation_dim), step_seeds[t])
                ).reshape(len(env_tasks), -1)
                arrays.actions[members, t] = step_actions[members]
                for worker, group in zip(workers, groups[1:]):
                    worker.step(step_actions[group], alive[group])
                results = [
                    step_environments(
                        envs, step_actions[groups[0]], alive[groups[0]], self.observation_dim
                    )
                ]
                results += [worker.result() for worker in workers]
                for group, result in zip(groups, results):
                    live = alive[group]  # the group's environments that stepped
                    self._check_step(t, group, live, result, env_tasks)
                    current[group[live]] = result.observations[live]
                    arrays.rewards[group[live], t] = result.rewards[live]
                    alive[group[live]] = ~result.done[live]
                if not alive.any():
                    break
        except WorkerExited as error:
            _close_workers(self._workers)  # the next rollouts start new ones
            raise RolloutError(
                f"{error} (task family '{self.name}', {self.env_id}, trajectories "
                f"{groups[1][0]}-{groups[-1][-1]})"
            ) from error
        except RolloutError:
            raise
        except BaseException:  # e.g. an interrupt between a request and its answer
            _close_workers(self._workers)
            raise

    def _check_step(self, t, group, live, result, env_tasks) -> None:
        """Raises for the first environment of `group[live]`, in order, that raised or
        returned a NaN or Inf observation (the group stopped stepping at one that raised)."""
        nonfinite = live & ~np.isfinite(result.observations).all(axis=1)
        first_nonfinite = int(np.argmax(nonfinite)) if nonfinite.any() else len(group)
        if result.failure is not None and result.failure[0] < first_nonfinite:
            position, error = result.failure
            index = group[position]
            self._fail(f"The environment raised at step {t}", env_tasks[index], index, error)
        if first_nonfinite < len(group):
            index = group[first_nonfinite]
            self._fail(
                f"Expected finite observations; received NaN or Inf at step {t}",
                env_tasks[index],
                index,
            )

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "horizon": self.horizon,
            "max_environments": self.max_environments,
        }


def _close_workers(workers: list[EnvironmentProcess]) -> None:
    while workers:
        workers.pop().close()
