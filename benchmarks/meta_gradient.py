"""Diagnostics of a kept meta-RL run's meta-gradient: where MAML-TRPO's update comes from.

For the meta-learned policy of a `benchmarks/meta_rl.py` run (and for the
untrained policy of the same recipe), on one meta-batch of the recipe's size:

1. curvature: the direction of TRPO's step with tfmeta's exact KL
   Hessian-vector products against the finite-difference products of the
   paper's code (rllab's `ConjugateGradientOptimizer` default,
   `FiniteDifferenceHvp` built with `base_eps=1`: central differences of the
   KL's gradient at a distance `|x| / |theta|`), their cosine, and the
   surrogate gain and KL of each direction's step scaled to the trust region;
2. the outer gradient: the norms of its second- and first-order parts and
   their cosine, and how well each, and the second-order term alone, agrees
   (cosine) between two independent samplings of the same tasks, for both
   inner objectives (`PolicyMAML(inner_objective=...)`);
3. the one-step adaptation gain on training-split tasks against the
   trajectories per step (gradient noise against what one step can reach);
4. the same gain with the policy's learned log-std shifted (whether more or
   less exploration noise would let one step reach further).

`--measurements` picks some of them (`curvature`, `outer_gradient`,
`adaptation_gain`, `log_std`); the last two concern the kept run only.

    python benchmarks/meta_gradient.py --run_dir=benchmarks/meta_rl_runs/halfcheetah_vel

The family and its options come from the run (`family.json`); the run
directory is only read.
"""

from __future__ import annotations

import functools
import json
import pathlib
import time

import tensorflow as tf
from absl import app, flags, logging

import machine

from tfmeta import checkpointing
from tfmeta.rl import policy_gradient, recipes, training
from tfmeta.rl.conjugate_gradient import conjugate_gradient
from tfmeta.rl.trpo import flatten, kl_hessian_vector_product, unflatten

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "run_dir", None, "A MAML run's own directory, e.g. benchmarks/meta_rl_runs/halfcheetah_vel."
)
flags.DEFINE_integer("seed", 7, "Seed of the tasks and samplings.")
flags.DEFINE_integer("gain_tasks", 20, "Training-split tasks of the gain measurement.")
flags.DEFINE_list("gain_rollouts", ["10", "20", "80"], "Trajectories per step to compare.")
flags.DEFINE_list("log_std_shifts", ["-0.5", "-0.25", "0", "0.25"], "Shifts of the log-std.")
MEASUREMENTS = ("curvature", "outer_gradient", "adaptation_gain", "log_std")
flags.DEFINE_multi_enum("measurements", list(MEASUREMENTS), MEASUREMENTS, "What to measure.")

DAMPING = 1e-5  # TRPO's, and the paper's `reg_coeff`


@functools.cache
def run_family() -> dict:
    """The run's family configuration (`family.json`, read once); a UsageError unless a
    recipe's."""
    path = pathlib.Path(FLAGS.run_dir or "") / "family.json"
    if not (pathlib.Path(FLAGS.run_dir or "") / training.CHECKPOINT_DIR).is_dir():
        raise app.UsageError(f"--run_dir={FLAGS.run_dir!r} holds no checkpoints of a run")
    config = json.loads(path.read_text())
    if config["name"] not in recipes.RECIPES:
        raise app.UsageError(
            f"--run_dir holds a run on '{config['name']}': expected a MAML run of one of "
            f"{sorted(recipes.RECIPES)}"
        )
    return config


def build_learner(restore: bool, **overrides):
    """The recipe's learner, evaluated as it trains (one step, its rate and trajectories);
    with the run's last checkpoint when `restore`."""
    family = run_family()
    recipe = recipes.get(family["name"])
    options = dict(
        eval_inner_steps=1,
        eval_inner_learning_rate=[recipe.inner_learning_rate],
        eval_rollouts_per_task=recipe.rollouts_per_task,
    )
    options.update(overrides)
    learner = recipes.build_learner(
        family["name"],
        family_options={k: v for k, v in family.items() if k != "name"},
        **options,
    )
    if restore:
        checkpoint = checkpointing.MetaCheckpoint(
            pathlib.Path(FLAGS.run_dir) / training.CHECKPOINT_DIR
        )
        checkpoint.set_model(learner)
        checkpoint.on_train_begin()
    return learner


def _cosine(a: tf.Tensor, b: tf.Tensor) -> float:
    return float(tf.reduce_sum(a * b) / (tf.norm(a) * tf.norm(b)))


class OuterProblem:
    """The outer update's surrogate and KL as functions of the meta-learned weights."""

    def __init__(self, learner, batches):
        self.learner, self.inner, self.batch = learner, batches[:-1], batches[-1]
        self.params = [tf.convert_to_tensor(v.value) for v in learner.policy.trainable_variables]
        self.old = tf.stop_gradient(self.outputs(self.params))
        self.distribution = learner.family.distribution

    def outputs(self, params):
        return self.learner.adapted_outputs(params, self.inner, self.batch.observations)

    def surrogate(self, outputs):
        return policy_gradient.likelihood_ratio_surrogate(
            self.distribution, self.old, outputs, self.batch
        )

    def kl(self, outputs):
        return policy_gradient.mean_kl(self.distribution, self.old, outputs, self.batch.mask)

    def gradient(self, of, params) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(params)
            value = of(self.outputs(params))
        return flatten(tape.gradient(value, params, unconnected_gradients="zero"))


def sampled_batches(learner, tasks, seed: int) -> list:
    """The policy-gradient batches of one sampling: before and after the inner step."""
    return [learner.policy_gradient_batch(r) for r in learner.adaptation_rollouts(tasks, seed)]


def curvature(learner, tasks) -> dict:
    """TRPO's direction with exact and with the paper code's finite-difference products."""
    problem = OuterProblem(learner, sampled_batches(learner, tasks, FLAGS.seed))
    params, max_kl = problem.params, learner.optimizer.max_kl
    exact = tf.function(
        lambda v: kl_hessian_vector_product(params, problem.outputs, problem.kl, problem.old, v)
        + DAMPING * v
    )
    kl_gradient = tf.function(lambda p: problem.gradient(problem.kl, p))
    epsilon = 1.0 / (float(tf.linalg.global_norm(params)) + 1e-8)

    def finite_difference(v):
        shifts = [epsilon * x for x in unflatten(v, params)]
        plus = kl_gradient([p + s for p, s in zip(params, shifts)])
        minus = kl_gradient([p - s for p, s in zip(params, shifts)])
        return (plus - minus) / (2 * epsilon) + DAMPING * v

    gradient = problem.gradient(problem.surrogate, params)
    result, directions = {}, {}
    for name, product in (("exact", exact), ("finite_difference", finite_difference)):
        direction = conjugate_gradient(product, gradient, learner.optimizer.cg_iterations)
        step = direction * tf.sqrt(2 * max_kl / tf.reduce_sum(direction * exact(direction)))
        outputs = problem.outputs([p + s for p, s in zip(params, unflatten(step, params))])
        directions[name] = direction
        result[name] = {
            "surrogate_gain": float(problem.surrogate(outputs) - problem.surrogate(problem.old)),
            "kl": float(problem.kl(outputs)),
        }
    result["cosine"] = _cosine(directions["exact"], directions["finite_difference"])
    return result


def outer_gradient(learner, tasks) -> dict:
    """Second- and first-order parts of the outer gradient, and their agreement between two
    independent samplings of the same tasks."""
    parts = []
    for seed in (FLAGS.seed, FLAGS.seed + 1):
        batches = sampled_batches(learner, tasks, seed)
        gradients = {}
        for first_order in (False, True):
            learner.first_order = first_order
            problem = OuterProblem(learner, batches)
            gradients[first_order] = problem.gradient(problem.surrogate, problem.params)
        learner.first_order = False
        parts.append(
            {"full": gradients[False], "first": gradients[True],
             "second": gradients[False] - gradients[True]}
        )
    one = parts[0]
    return {
        "norm_full": float(tf.norm(one["full"])),
        "norm_first_order": float(tf.norm(one["first"])),
        "cosine_full_first_order": _cosine(one["full"], one["first"]),
        "agreement": {name: _cosine(parts[0][name], parts[1][name]) for name in one},
    }


def _one_step(learner) -> dict:
    """Mean return before and after one step on the training-split tasks."""
    tasks = learner.family.sample_tasks(FLAGS.gain_tasks, seed=FLAGS.seed, split="train")
    returns = learner.adaptation_returns(tasks, seed=FLAGS.seed).numpy()
    return {
        "before": float(returns[:, 0].mean()),
        "after": float(returns[:, 1].mean()),
        "gain": float((returns[:, 1] - returns[:, 0]).mean()),
    }


def adaptation_gain() -> dict:
    """`_one_step` of the kept policy per trajectory count."""
    return {
        rollouts: _one_step(build_learner(restore=True, eval_rollouts_per_task=rollouts))
        for rollouts in [int(r) for r in FLAGS.gain_rollouts]
    }


def log_std_shifts() -> dict:
    """`_one_step` of the kept policy with its learned log-std shifted, per shift."""
    learner = build_learner(restore=True)
    log_std = [v for v in learner.policy.trainable_variables if v.path.endswith("log_std")]
    if not log_std:
        return {}
    learned = log_std[0].numpy()
    rows = {}
    for shift in [float(s) for s in FLAGS.log_std_shifts]:
        log_std[0].assign(learned + shift)
        rows[shift] = _one_step(learner)
    log_std[0].assign(learned)
    return rows


def measure(restore: bool) -> dict:
    """The `--measurements` on the kept policy (`restore`) or the untrained one."""
    started = time.time()
    learner = build_learner(restore)
    recipe = recipes.get(learner.family.name)
    tasks = next(iter(learner.family.task_batches(recipe.meta_batch_size, FLAGS.seed)))["tasks"]
    result = {"policy": "kept run" if restore else "untrained"}
    result["meta_iterations"] = learner.meta_iterations
    if "curvature" in FLAGS.measurements:
        result["curvature"] = curvature(learner, tasks)
    if "outer_gradient" in FLAGS.measurements:
        result["outer_gradient"] = {
            objective: outer_gradient(build_learner(restore, inner_objective=objective), tasks)
            for objective in policy_gradient.INNER_OBJECTIVES
        }
    if restore and "adaptation_gain" in FLAGS.measurements:
        result["adaptation_gain"] = adaptation_gain()
    if restore and "log_std" in FLAGS.measurements:
        result["log_std"] = log_std_shifts()
    result["seconds"] = time.time() - started
    return result


def print_table(results: list[dict]) -> None:
    print(f"\n{run_family()['name']}, {machine.describe()}")
    for r in results:
        print(f"\n{r['policy']} ({r['meta_iterations']} meta-iterations, {r['seconds']:.0f} s)")
        if "curvature" in r:
            c = r["curvature"]
            print(f"  TRPO direction, exact vs finite-difference curvature: cosine "
                  f"{c['cosine']:.3f}")
            for name in ("exact", "finite_difference"):
                print(f"    {name:18s} surrogate gain {c[name]['surrogate_gain']:.5f} "
                      f"KL {c[name]['kl']:.5f}")
        if "outer_gradient" in r:
            print("  outer gradient          |full| |first| cos(full, first)  agreement between "
                  "samplings: full / first / second-order term")
        for objective, g in r.get("outer_gradient", {}).items():
            a = g["agreement"]
            print(f"    {objective:18s} {g['norm_full']:7.3f} {g['norm_first_order']:7.3f} "
                  f"{g['cosine_full_first_order']:16.3f}  {a['full']:.3f} / {a['first']:.3f} / "
                  f"{a['second']:.3f}")
        for rollouts, row in r.get("adaptation_gain", {}).items():
            print(f"  one step with {rollouts:3d} trajectories per task: {row['before']:.1f} -> "
                  f"{row['after']:.1f} (gain {row['gain']:.1f})")
        for shift, row in r.get("log_std", {}).items():
            print(f"  one step with the log-std shifted by {shift:+.2f}: {row['before']:.1f} -> "
                  f"{row['after']:.1f} (gain {row['gain']:.1f})")


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)  # each learner built retraces TensorFlow's functions
    family = run_family()
    untrained = {"curvature", "outer_gradient"} & set(FLAGS.measurements)
    results = [measure(restore=True)] + ([measure(restore=False)] if untrained else [])
    print_table(results)
    print(json.dumps({"family": family["name"], "processor": machine.processor(),
                      "results": results}))


if __name__ == "__main__":
    app.run(main)
