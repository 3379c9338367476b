"""Meta-World ML1 as a task family (skipped without the metaworld extra)."""

import numpy as np
import pytest
import tensorflow as tf

from tfmeta import rl

pytest.importorskip(
    "metaworld", reason="needs the metaworld extra: pip install 'tfmeta[metaworld]'"
)
pytestmark = pytest.mark.slow  # Meta-World's import and environments take about 10 s


@pytest.fixture(scope="module")
def reach():
    return rl.families.get(
        {"name": "ml1", "env_name": "reach-v3", "horizon": 5, "max_environments": 2}
    )


def _random(observations, seed):
    return tf.random.stateless_uniform(
        tf.concat([tf.shape(observations)[:-1], [4]], 0), seed, -1, 1
    )


def test_train_and_test_tasks_index_mls_own_variations(reach):
    train = reach.sample_tasks(30, seed=0).numpy()
    test = reach.sample_tasks(30, seed=0, split="test").numpy()
    assert np.all(train[:, 0] == 0) and np.all(test[:, 0] == 1)
    assert train[:, 1].min() >= 0 and train[:, 1].max() < 50
    assert reach.observation_dim == 39 and reach.distribution.action_dim == 4


def test_rollouts_run_in_waves_and_repeat_under_a_seed(reach):
    tasks = reach.sample_tasks(2, seed=1, split="test")
    first = reach.rollouts(_random, tasks, 3, seed=4)  # 6 trajectories on 2 environments
    again = reach.rollouts(_random, tasks, 3, seed=4)
    assert first.observations.shape == (2, 3, 5, 39)
    assert len(reach._envs) == 2
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert np.all(first.mask.numpy() == 1.0) and np.all(first.rewards.numpy() != 0.0)


def test_an_unknown_skill_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown ML1 skill 'fly-v3'.*reach-v3"):
        rl.families.get({"name": "ml1", "env_name": "fly-v3"})


def test_rollouts_in_two_processes_are_the_same_numbers_as_in_one(reach):
    two = rl.families.get({**reach.get_config(), "processes": 2})
    try:
        tasks = reach.sample_tasks(3, seed=1, split="test")  # 9 trajectories on 2 environments
        expected = reach.rollouts(_random, tasks, 3, seed=4)
        received = two.rollouts(_random, tasks, 3, seed=4)
        for a, b in zip(expected, received):
            np.testing.assert_array_equal(a, b)
        assert len(two._workers) == 1 and len(two._envs) == 1  # one environment each
    finally:
        two.close()
