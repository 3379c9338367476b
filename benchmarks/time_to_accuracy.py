"""Time to accuracy: training minutes until Omniglot 5-way 1-shot test accuracy reaches 95%.

tfmeta's MAML and the PyTorch reference (benchmarks/reference_maml_torch.py, learn2learn's
MAML loop) train on the same recipe, the same machine and the same episodes, one after the
other, each in its own process with the same number of threads (tfmeta uses them as
`tfmeta train` does, `--cpu_threads`: by default one per op, the meta-batch's tasks side
by side; `--cpu_threads=per_op` for TensorFlow's default pools):

- the recipe of protocol P (benchmarks/throughput.py): Conv-4 with 64 filters, 5-way
  1-shot, 15 queries per class, meta-batch 32, one inner step at 0.4 in training and at
  test time, Adam at 1e-3, second order, BatchNorm on each batch's own statistics
  (learn2learn's convention); each side keeps its own defaults otherwise (initialisation,
  padding, BatchNorm epsilon);
- the episodes: Omniglot with the Vinyals split and rotations, 28x28, from
  `tfmeta.data.omniglot`; training meta-batches from one seed, and the same first
  `--eval_episodes` test episodes for every point of both curves;
- the clock: training time only. Every `--eval_minutes` of it the run stops the clock,
  scores the test episodes, and ends once the accuracy reaches `--target` or the training
  time reaches `--budget_minutes`. Fetching and converting episodes counts as training (it
  is part of every meta-update); evaluation does not.

    python benchmarks/time_to_accuracy.py --data=../shared/data/omniglot/omniglot.tar.gz
    python benchmarks/time_to_accuracy.py --data=... --threads=1 --eval_minutes=0.5

Needs PyTorch for the reference (`pip install .[bench]`); without it only tfmeta runs.
Prints a table, and as its last line one JSON object with the same figures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

from absl import app, flags

import machine

flags.DEFINE_string("data", None, "Omniglot ImageFolder folder or .tar.gz (default: TFDS).")
flags.DEFINE_string("cache_dir", None, "Cache of decoded images (default: tfmeta's).")
flags.DEFINE_float("target", 0.95, "Test accuracy to reach, in (0, 1).")
flags.DEFINE_float("budget_minutes", 30.0, "Training time after which a side gives up.")
flags.DEFINE_float("eval_minutes", 1.0, "Training minutes between two evaluations.")
flags.DEFINE_integer("eval_episodes", 200, "Test episodes per evaluation.")
flags.DEFINE_integer("threads", None, "Threads of each side (default: every core).")
flags.DEFINE_enum("cpu_threads", "auto", ["auto", "per_task", "per_op"],
                  "How tfmeta uses its threads (tfmeta.cpu_threads; auto: per_task, the "
                  "meta-batch's tasks side by side, as `tfmeta train` does).")
flags.DEFINE_list("sides", ["tfmeta", "reference"], "What to train: tfmeta, reference.")
flags.DEFINE_integer("seed", 0, "Seed of the training episodes and of the weights.")
flags.DEFINE_string("worker", None, "Internal: train one side in this process.")
FLAGS = flags.FLAGS

WAYS, SHOTS, QUERIES, META_BATCH_SIZE = 5, 1, 15, 32
INNER_LEARNING_RATE, META_LEARNING_RATE = 0.4, 1e-3
EVAL_BATCH = 20
SIDES = ("tfmeta", "reference")


def omniglot_sources():
    import tfmeta

    return tfmeta.data.omniglot(FLAGS.data, protocol="vinyals", cache_dir=FLAGS.cache_dir)


def training_episodes(sources):
    """Meta-batches of training episodes, the same stream for both sides."""
    return sources["train"].episodes(WAYS, SHOTS, QUERIES, meta_batch_size=META_BATCH_SIZE,
                                     seed=FLAGS.seed)


def test_episodes(sources):
    """The first `--eval_episodes` test episodes, in meta-batches of `EVAL_BATCH`."""
    count = -(-FLAGS.eval_episodes // EVAL_BATCH) * EVAL_BATCH
    return sources["test"].episodes(WAYS, SHOTS, QUERIES, meta_batch_size=EVAL_BATCH,
                                    num_episodes=count, seed=FLAGS.seed + 1)


class Clock:
    """Training time with evaluations left out, and the accuracy curve it draws.

    `tick(iterations)` after every meta-update: once `--eval_minutes` of training
    have passed it stops the clock, calls `evaluate()` (an accuracy in [0, 1]) and
    records the point. `done` says whether the target or the budget is reached.
    """

    def __init__(self, evaluate: Callable[[], float]):
        self.evaluate = evaluate
        self.curve: list[dict] = []
        self.done = False
        self._start = time.perf_counter()
        self._paused = 0.0
        self._next_point = 60 * FLAGS.eval_minutes

    def training_seconds(self) -> float:
        return time.perf_counter() - self._start - self._paused

    def tick(self, iterations: int) -> None:
        seconds = self.training_seconds()
        over_budget = seconds >= 60 * FLAGS.budget_minutes
        if seconds < self._next_point and not over_budget:
            return
        paused_at = time.perf_counter()
        accuracy = self.evaluate()
        self.curve.append({"train_seconds": seconds, "iterations": iterations,
                           "accuracy": accuracy})
        print(f"  {seconds / 60:6.2f} min  {iterations:>6} meta-updates  "
              f"accuracy {100 * accuracy:.2f}", file=sys.stderr, flush=True)
        self._next_point = seconds + 60 * FLAGS.eval_minutes
        self._paused += time.perf_counter() - paused_at
        self.done = accuracy >= FLAGS.target or over_budget

    def result(self) -> dict:
        reached = [point for point in self.curve if point["accuracy"] >= FLAGS.target]
        return {"curve": self.curve,
                "minutes_to_target": reached[0]["train_seconds"] / 60 if reached else None,
                "iterations_to_target": reached[0]["iterations"] if reached else None}


def train_tfmeta() -> dict:
    """tfmeta's MAML on the recipe, through `fit` as a user runs it."""
    import keras

    import tfmeta

    cpu_threads = tfmeta.cpu_threads.configure(FLAGS.cpu_threads, META_BATCH_SIZE,
                                               cores=FLAGS.threads)
    sources = omniglot_sources()
    keras.utils.set_random_seed(FLAGS.seed)
    learner = tfmeta.MAML(tfmeta.models.conv4((28, 28, 1), WAYS, filters=64),
                          inner_learning_rate=INNER_LEARNING_RATE, inner_steps=1,
                          query_statistics="transductive")
    learner.compile(optimizer=keras.optimizers.Adam(META_LEARNING_RATE),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    test = test_episodes(sources)

    def evaluate() -> float:
        return tfmeta.evaluation.evaluate_episodes(learner, test, FLAGS.eval_episodes)["accuracy"]

    clock = Clock(evaluate)

    class Tick(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.tick(int(learner.optimizer.iterations.numpy()))
            if clock.done:
                learner.stop_training = True

    learner.fit(training_episodes(sources), steps_per_epoch=10**9, epochs=1,
                callbacks=[Tick()], verbose=0)
    return dict(clock.result(), cpu_threads=f"{cpu_threads} ({tfmeta.cpu_threads.describe()})")


def train_reference() -> dict:
    """The PyTorch reference on the recipe and on the same episodes."""
    import numpy as np
    import torch

    import reference_maml_torch as reference

    torch.set_num_threads(FLAGS.threads or os.cpu_count() or 1)
    torch.manual_seed(FLAGS.seed)
    sources = omniglot_sources()
    test = [task for batch in test_episodes(sources).as_numpy_iterator()
            for task in reference.tasks_from_meta_batch(batch)][:FLAGS.eval_episodes]
    weights = reference.init_weights(seed=FLAGS.seed)
    running = reference.init_running_statistics()
    optimizer = torch.optim.Adam(weights, lr=META_LEARNING_RATE)

    def evaluate() -> float:
        return float(np.mean(reference.accuracy(weights, test, running=running)))

    clock = Clock(evaluate)
    iterations = 0
    for batch in training_episodes(sources).as_numpy_iterator():
        reference.meta_step(weights, optimizer, reference.tasks_from_meta_batch(batch),
                            running=running)
        iterations += 1
        clock.tick(iterations)
        if clock.done:
            break
    return dict(clock.result(), torch=torch.__version__)


def run_side(side: str) -> dict:
    """Trains one side in a fresh process with `--threads` threads; its JSON result."""
    threads = str(FLAGS.threads or os.cpu_count() or 1)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=threads)
    if FLAGS.cpu_threads == "per_op":  # TensorFlow's pools, of --threads threads each
        env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
    forwarded = ("data", "cache_dir", "target", "budget_minutes", "eval_minutes",
                 "eval_episodes", "seed", "threads", "cpu_threads")
    argv = [sys.executable, os.path.abspath(__file__), f"--worker={side}",
            *(f"--{name}={FLAGS[name].value}" for name in forwarded
              if FLAGS[name].value is not None)]
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{side} failed with exit status {result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def validate_flags() -> None:
    unknown = sorted(set(FLAGS.sides) - set(SIDES))
    if unknown:
        raise ValueError(f"Unknown sides {unknown}. Expected some of {list(SIDES)}")
    if not 0.0 < FLAGS.target < 1.0:
        raise ValueError(f"--target is an accuracy in (0, 1). Received: {FLAGS.target}")
    for name in ("budget_minutes", "eval_minutes", "eval_episodes", "threads"):
        if FLAGS[name].value is not None and FLAGS[name].value <= 0:
            raise ValueError(f"--{name} must be positive. Received: {FLAGS[name].value}")


def main(argv):
    del argv
    validate_flags()
    if FLAGS.worker:
        train = {"tfmeta": train_tfmeta, "reference": train_reference}[FLAGS.worker]
        print(json.dumps(train()))
        return
    sides = [side for side in SIDES if side in FLAGS.sides]
    note = None
    if "reference" in sides and importlib.util.find_spec("torch") is None:
        sides.remove("reference")
        note = "reference not run: install .[bench]"
    load_before = os.getloadavg()[0]
    results = {}
    for side in sides:
        print(f"training {side}", file=sys.stderr, flush=True)
        results[side] = run_side(side)
    load_after = os.getloadavg()[0]
    print_table(results, note, (load_before, load_after))
    print(json.dumps({"benchmark": "time_to_accuracy", "target": FLAGS.target,
                      "eval_episodes": FLAGS.eval_episodes, "eval_minutes": FLAGS.eval_minutes,
                      "budget_minutes": FLAGS.budget_minutes,
                      "threads": FLAGS.threads or os.cpu_count(),
                      "processor": machine.processor(),
                      "load_average": {"before": load_before, "after": load_after},
                      "results": results, "reference_note": note}))


def print_table(results: dict, note: str | None, loads: tuple[float, float]) -> None:
    threads = FLAGS.threads or os.cpu_count()
    print(f"Omniglot 5-way 1-shot (Vinyals split), protocol P's recipe, second order; "
          f"{FLAGS.eval_episodes} test episodes every {FLAGS.eval_minutes:g} training minutes; "
          f"{threads} thread(s) per side")
    print(f"Processor: {machine.describe()}; load average {loads[0]:.2f} before, "
          f"{loads[1]:.2f} after")
    if "tfmeta" in results:
        print(f"tfmeta's CPU threads: {results['tfmeta']['cpu_threads']}")
    print(f"{'side':<30}{'minutes to ' + format(100 * FLAGS.target, 'g') + '%':>18}"
          f"{'meta-updates':>14}{'last accuracy %':>17}")
    for side, result in results.items():
        last = result["curve"][-1] if result["curve"] else None
        minutes = result["minutes_to_target"]
        name = side if side == "tfmeta" else f"PyTorch {result['torch']} reference"
        print(f"{name:<30}{'not reached' if minutes is None else format(minutes, '.1f'):>18}"
              f"{result['iterations_to_target'] or '-':>14}"
              f"{'-' if last is None else format(100 * last['accuracy'], '.2f'):>17}")
    if "tfmeta" in results and "reference" in results:
        ours, theirs = (results[s]["minutes_to_target"] for s in ("tfmeta", "reference"))
        if ours is not None and theirs is not None:
            print(f"reference's minutes / tfmeta's: {theirs / ours:.2f}")
    if note:
        print(note)


if __name__ == "__main__":
    app.run(main)
