"""benchmarks/time_budget.py anneals the learning rate over a time budget, across resumes too.

benchmarks/omniglot.py's `--anneal` replaces a recipe's schedule by a constant-rate
optimizer whose rate the budget's callback sets before every step: the recipe's first rate
times a cosine from 1 to 0 over the whole budget. A run stopped and resumed must follow the
same curve as one uninterrupted run, since the budget counts training time over all parts.
"""

import math
import sys
import types
from pathlib import Path

import keras
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import time_budget  # noqa: E402

RATE, BUDGET = 1e-3, 100.0


class Clock:
    """A `time.perf_counter` that returns what the test sets."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def rate_at(timer, clock, seconds):
    """The learning rate `timer` sets for a step that starts `seconds` into its part."""
    clock.now = seconds
    timer.on_train_batch_begin(0)
    return float(keras.ops.convert_to_numpy(timer.model.optimizer.learning_rate))


def started_timer(clock, left, spent_before):
    optimizer, rate = time_budget.constant_rate(keras.optimizers.Adam(RATE))
    timer = time_budget.TimeBudget(left, spent_before, anneal_from=rate)
    timer.set_model(types.SimpleNamespace(optimizer=optimizer))
    clock.now = 0.0
    timer.on_train_begin()
    return timer


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time_budget.time, "perf_counter", clock)
    return clock


def test_rate_follows_a_cosine_to_zero_over_the_budget(clock):
    timer = started_timer(clock, BUDGET, 0.0)
    for seconds in (0.0, 25.0, 50.0, 75.0, 100.0, 130.0):
        expected = RATE * 0.5 * (1 + math.cos(math.pi * min(1.0, seconds / BUDGET)))
        assert rate_at(timer, clock, seconds) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert rate_at(timer, clock, BUDGET) == pytest.approx(0.0, abs=1e-12)


def test_a_resumed_run_continues_the_same_curve(clock):
    whole = started_timer(clock, BUDGET, 0.0)
    expected = [rate_at(whole, clock, 40.0 + s) for s in (0.0, 10.0, 35.0)]
    resumed = started_timer(clock, BUDGET - 40.0, 40.0)  # a second part after 40 s
    assert [rate_at(resumed, clock, s) for s in (0.0, 10.0, 35.0)] == pytest.approx(
        expected, rel=1e-6)


def test_constant_rate_replaces_a_schedule_by_its_first_rate():
    scheduled = keras.optimizers.Adam(
        keras.optimizers.schedules.ExponentialDecay(RATE, 10, 0.5, staircase=True), beta_2=0.99)
    optimizer, rate = time_budget.constant_rate(scheduled)
    assert rate == pytest.approx(RATE)
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.get_config()["beta_2"] == 0.99
    optimizer.learning_rate = 0.5 * rate  # settable, unlike a scheduled rate
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.5 * RATE)
