"""Sinusoid regression, the protocol of Finn et al. 2017 (section 5.1, appendix).

MAML meta-trains an MLP 40-40 (ReLU) on K=10 tasks (meta-batch 25, one inner
SGD step at alpha=0.01, Adam 1e-3 outer). Then on 600 held-out tasks it
adapts from K=5 support points and we report the query MSE after 1, 5 and
10 steps (95% CI), next to the paper (0.67 / 0.38 / 0.35) and to a network
pretrained on all tasks (plain regression) fine-tuned with the same steps.

A Conditional Neural Process (Garnelo et al. 2018: encoder 4 x 128, decoder
2 x 128) trains on the same task stream and budget (Adam 1e-3) and predicts
the same held-out tasks in one forward pass: the MSE of its predicted mean,
and its Gaussian NLL. A second CNP trains on Gaussian-process curves (the
CNP code's setting: RBF lengthscale 0.4, 10 context and 10 target points,
meta-batch 64, Adam 1e-4) and is scored by its NLL on held-out curves (10
context points, 100 targets); that paper shows no such table, so no
published figure stands beside it.

    python benchmarks/sinusoid.py                    # the papers' 70,000 / 200,000 iterations
    python benchmarks/sinusoid.py --iterations=5000 --gp_iterations=5000  # a quick look

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

flags.DEFINE_integer("iterations", 70000, "Sinusoid meta-updates (the paper: 70,000).")
flags.DEFINE_integer("gp_iterations", 200000, "GP-curve CNP updates (the CNP code: 200,000).")
flags.DEFINE_integer("meta_batch_size", 25, "Tasks per meta-update.")
flags.DEFINE_integer("eval_tasks", 600, "Held-out tasks.")
flags.DEFINE_integer("eval_shots", 5, "Support points of a held-out task.")
flags.DEFINE_integer("seed", 0, "Seed of weights and tasks.")
FLAGS = flags.FLAGS

PAPER_MAML = {1: 0.67, 5: 0.38, 10: 0.35}
STEPS = (1, 5, 10)
ALPHA = 0.01
QUERY_POINTS = 100
GP_CONTEXT_POINTS = 10


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


def train_cnp(
    tasks: tfmeta.data.TaskFamily, iterations: int, meta_batch_size: int, learning_rate: float
) -> tuple[tfmeta.ConditionalNeuralProcess, float]:
    """A CNP with the paper's networks, trained on 10 context and 10 target points per task."""
    keras.utils.set_random_seed(FLAGS.seed)
    cnp = tfmeta.ConditionalNeuralProcess(tfmeta.models.cnp_encoder(), tfmeta.models.cnp_decoder())
    cnp.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=tfmeta.losses.GaussianNegativeLogLikelihood())
    episodes = tasks.episodes(10, 10, meta_batch_size, seed=FLAGS.seed)
    start = time.perf_counter()
    cnp.fit(episodes, steps_per_epoch=iterations, epochs=1, verbose=0)
    return cnp, time.perf_counter() - start


def cnp_scores(cnp: tfmeta.ConditionalNeuralProcess, episodes) -> dict[str, dict[str, float]]:
    """Held-out MSE of the predicted mean and Gaussian NLL per task (one forward pass each)."""
    def mse(targets, predictions):
        return float(tf.reduce_mean(
            tfmeta.losses.predictive_mean_squared_error(targets, predictions)))

    return {
        "mse": evaluation.mean_and_ci95(evaluation.per_task_values(cnp, episodes, mse)),
        "nll": evaluation.mean_and_ci95(evaluation.per_task_values(cnp, episodes)),
    }


def held_out_sinusoids() -> tf.data.Dataset:
    """The 600 held-out tasks every sinusoid learner is scored on."""
    return tfmeta.data.SinusoidTasks().episodes(
        FLAGS.eval_shots, QUERY_POINTS, meta_batch_size=25, num_episodes=FLAGS.eval_tasks,
        seed=FLAGS.seed + 1_000_003,
    )


def mse_after_steps(model: keras.Model) -> dict[int, dict[str, float]]:
    """Held-out query MSE after each number of inner steps in `STEPS`."""
    episodes = held_out_sinusoids()
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
    cnp, cnp_seconds = train_cnp(tfmeta.data.SinusoidTasks(), FLAGS.iterations,
                                 FLAGS.meta_batch_size, 1e-3)
    gp_cnp, gp_seconds = train_cnp(tfmeta.data.GaussianProcessTasks(), FLAGS.gp_iterations, 64,
                                   1e-4)
    rows = {
        "maml": mse_after_steps(learner.model),
        "pretrained": mse_after_steps(baseline),
    }
    cnp_sinusoid = cnp_scores(cnp, held_out_sinusoids())
    gp_curves = tfmeta.data.GaussianProcessTasks().episodes(
        GP_CONTEXT_POINTS, QUERY_POINTS, meta_batch_size=25, num_episodes=FLAGS.eval_tasks,
        seed=FLAGS.seed + 1_000_003,
    )
    cnp_gp = cnp_scores(gp_cnp, gp_curves)
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
    one_pass = cnp_sinusoid["mse"]
    print(f"{'CNP (one pass)':<22}{one_pass['mean']:>10.3f} +/- {one_pass['ci95']:.3f}"
          f"   (query NLL {cnp_sinusoid['nll']['mean']:.3f} +/- {cnp_sinusoid['nll']['ci95']:.3f})")
    print(f"GP curves, CNP after {FLAGS.gp_iterations} updates, {GP_CONTEXT_POINTS} context / "
          f"{QUERY_POINTS} target points, {FLAGS.eval_tasks} curves: NLL "
          f"{cnp_gp['nll']['mean']:.3f} +/- {cnp_gp['nll']['ci95']:.3f}, MSE of the mean "
          f"{cnp_gp['mse']['mean']:.3f} +/- {cnp_gp['mse']['ci95']:.3f}")
    print(f"training time: MAML {maml_seconds:.0f} s, pretrained {baseline_seconds:.0f} s, "
          f"CNP {cnp_seconds:.0f} s (sinusoids), {gp_seconds:.0f} s (GP curves)")
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
                "cnp_sinusoid": cnp_sinusoid,
                "gp_iterations": FLAGS.gp_iterations,
                "cnp_gaussian_process": cnp_gp,
                "train_seconds": {"maml": maml_seconds, "pretrained": baseline_seconds,
                                  "cnp_sinusoid": cnp_seconds, "cnp_gaussian_process": gp_seconds},
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
