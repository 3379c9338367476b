"""A training-time budget for the benchmarks' `fit` calls, resumable, with an optional
learning rate annealed over it.

Budgets count training time only (evaluations for a curve are paused out) and add up over
the parts of a resumed run, so a run stopped and continued ends where one uninterrupted run
would, and an annealed rate follows the same curve.
"""

from __future__ import annotations

import math
import time

import keras


def constant_rate(optimizer: keras.optimizers.Optimizer
                  ) -> tuple[keras.optimizers.Optimizer, float]:
    """The same optimizer at a constant (settable) rate, its schedule's first, and that rate."""
    rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return type(optimizer).from_config(dict(optimizer.get_config(), learning_rate=rate)), rate


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of training time have passed; draws the accuracy curve.

    With `evaluate` (a function of the learner returning an accuracy record),
    evaluates every `curve_seconds` of training time and appends the point
    to `curve`; evaluation time is not training time. With `anneal_from`, sets
    the optimizer's learning rate before every step to `anneal_from` times a
    cosine from 1 to 0 over the whole budget (`spent_before + seconds`), so a
    resumed run continues the same curve.
    """

    def __init__(self, seconds: float | None, spent_before: float = 0.0, evaluate=None,
                 curve_seconds: float | None = None, curve: list | None = None,
                 anneal_from: float | None = None):
        super().__init__()
        self.seconds = seconds
        self.spent_before = spent_before
        self.evaluate = evaluate
        self.curve_seconds = curve_seconds
        self.curve = [] if curve is None else curve
        self.anneal_from = anneal_from
        self.spent = 0.0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._paused = 0.0
        last = self.curve[-1]["train_seconds"] if self.curve else 0.0
        self._next_point = None if self.curve_seconds is None else last + self.curve_seconds

    def on_train_batch_begin(self, batch, logs=None):
        if self.anneal_from is None:
            return
        spent = time.perf_counter() - self._start - self._paused
        budget = self.spent_before + self.seconds
        progress = 1.0 if budget <= 0 else min(1.0, (self.spent_before + spent) / budget)
        self.model.optimizer.learning_rate = \
            self.anneal_from * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_train_batch_end(self, batch, logs=None):
        self.spent = time.perf_counter() - self._start - self._paused
        total = self.spent_before + self.spent
        if self._next_point is not None and total >= self._next_point:
            paused_at = time.perf_counter()
            point = self.evaluate(self.model)
            self.curve.append(dict(point, train_seconds=total,
                                   iterations=int(self.model.optimizer.iterations.numpy())))
            print(f"  {total / 60:6.1f} min  {self.curve[-1]['iterations']:>7} it  "
                  f"accuracy {100 * point['accuracy']:.2f}", flush=True)
            self._next_point = total + self.curve_seconds
            self._paused += time.perf_counter() - paused_at
        if self.seconds is not None and self.spent >= self.seconds:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.spent = time.perf_counter() - self._start - self._paused
        self.iterations = int(self.model.optimizer.iterations.numpy())
