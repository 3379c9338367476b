"""Environments stepped in worker processes: the same rollouts, failures named with their task."""

import os
import pickle
import signal

import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import uniform_actions
from tests.rl.scripted_cheetah import (
    ENDS,
    RAISES,
    RAISES_ON_RESET,
    REFUSED,
    RETURNS_NAN,
    ScriptedCheetah,
)
from tfmeta.rl.gymnasium_family import RolloutError
from tfmeta.rl.mujoco_families import HalfCheetahVelocity

# (tests.rl.scripted_cheetah skips this module without the rl extra)


@pytest.fixture(scope="module")
def two_processes():
    """A family stepped by this process and one worker (shared: a worker takes seconds to
    start, importing TensorFlow)."""
    family = ScriptedCheetah(horizon=6, processes=2)
    yield family
    family.close()


def test_rollouts_are_the_same_numbers_in_one_or_two_processes(two_processes):
    tasks = tf.constant([[0.5], [ENDS], [1.5]])  # 3 x 3 trajectories: 5 here, 4 in the worker
    alone = ScriptedCheetah(horizon=6).rollouts(uniform_actions, tasks, 3, seed=7)
    split = two_processes.rollouts(uniform_actions, tasks, 3, seed=7)
    for field, a, b in zip(alone._fields, alone, split):
        np.testing.assert_array_equal(a, b, err_msg=field)
    np.testing.assert_array_equal(split.mask.numpy()[1], [[1, 1, 1, 0, 0, 0]] * 3)
    assert len(two_processes._workers) == 1 and len(two_processes._envs) >= 5


def test_waves_over_capped_environments_split_among_three_processes():
    tasks = tf.constant([[0.5], [ENDS], [1.5]])
    alone = ScriptedCheetah(horizon=5, max_environments=4).rollouts(uniform_actions, tasks, 2, 1)
    family = ScriptedCheetah(horizon=5, max_environments=4, processes=3)
    try:
        split = family.rollouts(uniform_actions, tasks, 2, 1)  # waves of 4 and 2 trajectories
        assert len(family._workers) == 2
    finally:
        family.close()
    for field, a, b in zip(alone._fields, alone, split):
        np.testing.assert_array_equal(a, b, err_msg=field)


@pytest.mark.parametrize(
    "task, message",
    [
        (RAISES, r"raised at step 2 .*task \[0\.7\].*halfcheetah_vel.*environment 2.*blew up"),
        (RETURNS_NAN, r"finite observations.*step 2 .*task \[0\.8\].*environment 2"),
        (RAISES_ON_RESET, r"raised on reset .*task \[0\.9\].*environment 2.*no such start"),
        (REFUSED, r"raised on reset .*task \[0\.95\].*environment 2.*no such velocity"),
    ],
)
def test_a_failure_in_a_worker_is_reported_with_its_task(two_processes, task, message):
    tasks = tf.constant([[0.5], [task]])  # trajectories 2 and 3 (the failing task's): the worker
    with pytest.raises(RolloutError, match=message):
        two_processes.rollouts(uniform_actions, tasks, 2, seed=0)
    after = two_processes.rollouts(uniform_actions, tf.constant([[0.5], [1.0]]), 2, seed=0)
    assert np.all(np.isfinite(after.observations.numpy()))  # the worker answers in turn


def test_an_environment_that_refuses_its_task_is_reported_with_it_in_this_process():
    family = ScriptedCheetah(horizon=6)
    with pytest.raises(RolloutError, match=r"raised on reset .*task \[0\.95\].*no such velocity"):
        family.rollouts(uniform_actions, tf.constant([[0.5], [REFUSED]]), 1, seed=0)


def test_a_worker_that_dies_is_reported_and_replaced(two_processes):
    tasks = tf.constant([[0.5], [1.0]])
    two_processes.rollouts(uniform_actions, tasks, 2, seed=0)
    worker = two_processes._workers[0]
    os.kill(worker._process.pid, signal.SIGKILL)
    worker._process.join()
    with pytest.raises(RolloutError, match=r"worker process .* ended .*halfcheetah_vel"):
        two_processes.rollouts(uniform_actions, tasks, 2, seed=0)
    assert two_processes._workers == []
    again = two_processes.rollouts(uniform_actions, tasks, 2, seed=0)
    expected = ScriptedCheetah(horizon=6).rollouts(uniform_actions, tasks, 2, seed=0)
    np.testing.assert_array_equal(again.observations, expected.observations)


def test_close_stops_the_workers_and_the_family_pickles_without_them():
    family = ScriptedCheetah(horizon=3, processes=2)
    family.rollouts(uniform_actions, tf.constant([[1.0]]), 2, seed=0)
    process = family._workers[0]._process
    copy = pickle.loads(pickle.dumps(family))
    assert copy._envs == [] and copy._workers == [] and copy.processes == 2
    family.close()
    assert not process.is_alive() and family._workers == [] and family._envs == []
    assert "processes" not in family.get_config()  # a setting of the machine, not the tasks


@pytest.mark.parametrize("processes", [0, -1, 1.5, True, "2"])
def test_processes_must_be_a_positive_integer(processes):
    with pytest.raises(ValueError, match=r"`processes` to be an integer >= 1.*processes="):
        HalfCheetahVelocity(horizon=3, processes=processes)
