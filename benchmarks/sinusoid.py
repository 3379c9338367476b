"""Sinusoid regression, the protocol of Finn et al. 2017 (section 5.1, appendix).

MAML meta-trains an MLP 40-40 (ReLU) on K=10 tasks (meta-batch 25, one inner
SGD step at alpha=0.01, Adam 1e-3 outer). Then on 600 held-out tasks it
adapts from K=5 support points and we report the query MSE after 1, 5 and
10 steps (95% CI), next to the paper (0.67 / 0.38 / 0.35) and to a network
pretrained on all tasks (plain regression) fine-tuned with the same steps.

    python benchmarks/sinusoid.py                    # the paper's 70,000 iterations
    python benchmarks/sinusoid.py --iterations=5000  # a quick look

Prints a table, and as its last line one JSON object with the same figures.
"""

from __future__ import annotations

import json
import time

import keras
import tensorflow as tf
from absl import app, flags

import tfmeta
from tfmeta import evaluation

flags.DEFINE_integer("iterations", 70000, "Meta-updates (the paper: 70,000).")
flags.DEFINE_integer("meta_batch_size", 25, "Tasks per meta-update.")
flags.DEFINE_integer("eval_tasks", 600, "Held-out tasks.")
flags.DEFINE_integer("eval_shots", 5, "Support points of a held-out task.")
flags.DEFINE_integer("seed", 0, "Seed of weights and tasks.")
FLAGS = flags.FLAGS

PAPER_MAML = {1: 0.67, 5: 0.38, 10: 0.35}
STEPS = (1, 5, 10)
ALPHA = 0.01
QUERY_POINTS = 100


def meta_train(iterations: int) -> tuple[tfmeta.MAML, float]:
    keras.utils.set_random_seed(FLAGS.seed)
    learner = tfmeta.MAML(tfmeta.models.mlp(), inner_learning_rate=ALPHA, inner_steps=1)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    episodes = tfmeta.data.SinusoidTasks().episodes(10, 10, FLAGS.meta_batch_size, seed=FLAGS.seed)
    start = time.perf_counter()
    learner.fit(episodes, steps_per_epoch=iterations, epochs=1, verbose=0)
    return learner, time.perf_counter() - start


def pretrain(iterations: int) -> tuple[keras.Model, float]:
    """The baseline: one network regressed on points of all tasks, same budget."""
    keras.utils.set_random_seed(FLAGS.seed)
    model = tfmeta.models.mlp()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    points = tfmeta.data.SinusoidTasks().episodes(10, 10, FLAGS.meta_batch_size, seed=FLAGS.seed)
    points = points.map(
        lambda batch: (
            tf.reshape(batch["support_x"], [-1, 1]),
            tf.reshape(batch["support_y"], [-1, 1]),
        )
    )
    start = time.perf_counter()
    model.fit(points, steps_per_epoch=iterations, epochs=1, verbose=0)
    return model, time.perf_counter() - start


def mse_after_steps(model: keras.Model) -> dict[int, dict[str, float]]:
    """Held-out query MSE after each number of inner steps in `STEPS`."""
    episodes = tfmeta.data.SinusoidTasks().episodes(
        FLAGS.eval_shots, QUERY_POINTS, meta_batch_size=25, num_episodes=FLAGS.eval_tasks,
        seed=FLAGS.seed + 1_000_003,
    )
    results = {}
    for steps in STEPS:
        adapter = tfmeta.MAML(model, eval_inner_learning_rate=ALPHA, eval_inner_steps=steps)
        adapter.compile(loss="mse")
        results[steps] = evaluation.mean_and_ci95(evaluation.per_task_values(adapter, episodes))
    return results


def main(argv):
    del argv
    learner, maml_seconds = meta_train(FLAGS.iterations)
    baseline, baseline_seconds = pretrain(FLAGS.iterations)
    rows = {
        "maml": mse_after_steps(learner.model),
        "pretrained": mse_after_steps(baseline),
    }
    print(
        f"Sinusoid, {FLAGS.iterations} iterations, K=10 training, "
        f"{FLAGS.eval_shots}-shot evaluation on {FLAGS.eval_tasks} tasks: query MSE (95% CI)"
    )
    print(f"{'model':<22}" + "".join(f"{f'{s} step(s)':>18}" for s in STEPS))
    for name, results in rows.items():
        print(
            f"{name:<22}"
            + "".join(f"{results[s]['mean']:>10.3f} +/- {results[s]['ci95']:.3f}" for s in STEPS)
        )
    print(f"{'MAML (Finn et al.)':<22}" + "".join(f"{PAPER_MAML[s]:>18.2f}" for s in STEPS))
    print(f"training time: MAML {maml_seconds:.0f} s, pretrained {baseline_seconds:.0f} s")
    print(
        json.dumps(
            {
                "benchmark": "sinusoid",
                "iterations": FLAGS.iterations,
                "eval_tasks": FLAGS.eval_tasks,
                "eval_shots": FLAGS.eval_shots,
                "mse": {
                    name: {str(s): results[s] for s in STEPS} for name, results in rows.items()
                },
                "paper_maml_mse": {str(s): v for s, v in PAPER_MAML.items()},
                "train_seconds": {"maml": maml_seconds, "pretrained": baseline_seconds},
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
