"""Fixtures of the meta-RL tests."""

import pytest

from tests.rl.rl_testing import small_learner, tiny_policy
from tfmeta import rl


@pytest.fixture(scope="session")
def trpo_learner():
    """One small TRPO learner and its initial weights, shared: tracing its meta-iteration is the
    slow part of these tests. Tests start from `rl_testing.restart(learner, weights)`."""
    learner = small_learner(tiny_policy(seed=3, dtype="float32"), eval_inner_steps=2)
    learner.compile(optimizer=rl.TRPO(max_kl=0.01))
    return learner, learner.policy.get_weights()
