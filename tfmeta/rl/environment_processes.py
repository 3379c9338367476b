"""Stepping a family's environments, in this process or in worker processes.

A Gymnasium family's rollouts step many environments in lockstep. On a
machine with more than one core, `GymnasiumTaskFamily(processes=N)` splits
them among this process and `N - 1` `EnvironmentProcess` workers: at each
step every worker receives its environments' actions, steps them while this
process steps its own, and sends back observations, rewards and the end of
each trajectory. Both sides run the same two functions, `reset_environments`
and `step_environments`, so the split changes no number.

Workers are started with the `spawn` method (forking a process that already
runs TensorFlow's threads is unsafe) and build their environments from a
pickled copy of the family. A worker exits when told to, or when its pipe
closes because this process has ended.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
from typing import Callable, NamedTuple

import numpy as np

# An environment's failure: its position in the group and the exception it raised.
Failure = tuple[int, BaseException]


class ResetResult(NamedTuple):
    """First observations of a group of environments, or the failure that stopped the resets."""

    observations: np.ndarray | None
    failure: Failure | None


class StepResult(NamedTuple):
    """One step of a group of environments (float64 observations, as the simulator's).

    Rows of environments that did not step (not alive, or from a failure on)
    are zeros.
    """

    observations: np.ndarray
    rewards: np.ndarray
    done: np.ndarray
    failure: Failure | None


def reset_environments(envs: list, tasks: np.ndarray, seeds: np.ndarray) -> ResetResult:
    """Sets each environment's task and resets it with its seed; stops at the first failure."""
    observations = []
    for position, (env, task, seed) in enumerate(zip(envs, tasks, seeds)):
        try:
            env.set_task(task)
            observation, _ = env.reset(seed=int(seed))
        except Exception as error:  # reported by the caller with the environment's task
            return ResetResult(None, (position, error))
        observations.append(observation)
    return ResetResult(np.stack(observations), None)


def step_environments(
    envs: list, actions: np.ndarray, alive: np.ndarray, observation_dim: int
) -> StepResult:
    """Steps the environments whose trajectory is alive, in order; stops at the first failure."""
    observations = np.zeros((len(envs), observation_dim))
    rewards, done = np.zeros(len(envs)), np.zeros(len(envs), bool)
    for position in np.flatnonzero(alive):
        try:
            observation, reward, terminated, truncated, _ = envs[position].step(actions[position])
        except Exception as error:  # reported by the caller with the environment's task
            return StepResult(observations, rewards, done, (int(position), error))
        observations[position] = np.reshape(observation, -1)
        rewards[position] = reward
        done[position] = terminated or truncated
    return StepResult(observations, rewards, done, None)


class WorkerExited(RuntimeError):
    """A worker process ended (killed, or crashed in the simulator) before it answered."""


class EnvironmentProcess:
    """A worker process that holds environments built by `family` and steps them on request.

    `reset` and `step` send a request and return at once; `result` waits for
    the answer (a `ResetResult` or `StepResult`), so the caller can step its
    own environments meanwhile.

    Args:
        family: a picklable task family; the worker calls its
            `_environments(count)` to build (and keep) its environments.
    """

    def __init__(self, family):
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(  # the family as bytes: the process keeps no reference
            target=_serve,
            args=(child, pickle.dumps(family)),
            daemon=True,
            name="tfmeta-environments",
        )
        self._process.start()
        child.close()

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> None:
        """Asks the worker to reset `len(tasks)` environments to `tasks` with `seeds`."""
        self._send(("reset", tasks, seeds))

    def step(self, actions: np.ndarray, alive: np.ndarray) -> None:
        """Asks the worker to step its environments whose trajectory is `alive`."""
        self._send(("step", actions, alive))

    def result(self) -> ResetResult | StepResult:
        """The answer to the last request.

        Raises:
            WorkerExited: the worker ended before answering.
        """
        try:
            return self._connection.recv()
        except (EOFError, OSError) as error:
            raise WorkerExited(self._exit_text()) from error

    def close(self) -> None:
        """Stops the worker (its environments close with it)."""
        try:
            self._connection.send(None)
        except OSError:
            pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._connection.close()

    def _send(self, request: tuple) -> None:
        try:
            self._connection.send(request)
        except OSError as error:
            raise WorkerExited(self._exit_text()) from error

    def _exit_text(self) -> str:
        self._process.join(timeout=1)
        return (
            f"An environment worker process (pid {self._process.pid}) ended with exit code "
            f"{self._process.exitcode} before it answered"
        )


def _serve(connection, pickled_family: bytes) -> None:
    """The worker's loop: answer requests until told to stop or the pipe closes.

    It ignores Ctrl-C (which reaches the whole process group): the family's
    process decides, and stops its workers when interrupted.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    family = pickle.loads(pickled_family)
    handlers: dict[str, Callable] = {
        "reset": lambda tasks, seeds: reset_environments(
            family._environments(len(tasks)), tasks, seeds
        ),
        "step": lambda actions, alive: step_environments(
            family._environments(len(actions)), actions, alive, family.observation_dim
        ),
    }
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):  # the family's process ended
            break
        if request is None:
            break
        kind, *arguments = request
        result = handlers[kind](*arguments)
        try:
            connection.send(result)
        except Exception:  # an exception that does not pickle: sent as its text
            position, error = result.failure
            connection.send(result._replace(failure=(position, RuntimeError(repr(error)))))
    family.close()
    connection.close()
