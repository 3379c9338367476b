"""Meta-RL: MAML-TRPO on the task families of Finn et al. 2017 (section 5.3), resumable.

For each family it meta-trains a `tfmeta.rl.PolicyMAML` with the paper's
settings (`tfmeta.rl.recipes`: 2x100 ReLU Gaussian policy, TRPO with a KL
bound of 0.01, 0.02 for HalfCheetah direction, linear feature baseline) in
`--run_dir/<family>/`, then reports the mean return over 40 held-out tasks
after 0, 1, 2 and 3 adaptation steps (95% CI), evaluated as the paper's
test scripts do (2D navigation: 40 trajectories per step, step sizes 0.5
then 0.25; HalfCheetah: 20 trajectories, 0.1 then 0.05), next to
the paper's published figures and to the same protocol from a randomly
initialised policy.

    python benchmarks/meta_rl.py --families=navigation_2d --budget_minutes=30
    python benchmarks/meta_rl.py --families=halfcheetah_vel --budget_minutes=60   # again: continues
    python benchmarks/meta_rl.py --families=halfcheetah_vel --budget_minutes=480 \
        --run_dir=benchmarks/meta_rl_runs      # continues the run whose state the repository keeps
    python benchmarks/meta_rl.py --speed --families=halfcheetah_vel,ant_dir
    python benchmarks/meta_rl.py --families=halfcheetah_vel --budget_minutes=1 \
        --run_dir=benchmarks/meta_rl_runs --eval_split=paper   # the paper's own test tasks
    python benchmarks/meta_rl.py --families=halfcheetah_vel --learner=oracle --budget_minutes=60

`--budget_minutes` is the training time of a family in all parts together;
running the command again continues from the last checkpoint (every
`iterations_per_epoch` meta-iterations) until the budget or the paper's
number of meta-iterations is reached; the untrained policy's figures are
kept in `random_init.json` beside the run, so later parts do not sample
them again. `--speed` measures sampling instead:
environment steps per second of tfmeta's batched rollouts against a plain
Gymnasium loop over the same environments with the same policy, and one
meta-iteration split into sampling, inner steps and outer update.

`--learner` trains the paper's baselines instead of MAML, with the same
recipe and evaluation, in `--run_dir/<family>_<learner>/`: `pretrained`, one
policy trained on all tasks without adaptation (TRPO on the training tasks'
rollouts, `PolicyMAML(inner_steps=0)`), then fine-tuned by the evaluation's
steps; `oracle`, the same with the task appended to the observation
(`tfmeta.rl.TaskObserved`), evaluated without adaptation. `--first_order` and
`--inner_objective=likelihood_ratio` change MAML's meta-gradient (kept runs:
`--run_dir=benchmarks/meta_rl_runs/first_order` and `.../likelihood_ratio`; switched
on part-way: `.../likelihood_ratio_from_195` and `.../likelihood_ratio_from_1000`);
`benchmarks/meta_gradient.py` takes a run's meta-gradient apart. `--max_kl`
replaces the recipe's KL bound, also for the later parts of a run (a run's
state copied to another `--run_dir` continues there with the new bound), and
`--rollouts_per_task` the recipe's trajectories per task in meta-training, the
same way. `--learned_inner_learning_rates` meta-learns a step size per weight
(Meta-SGD); with `--initial_policy=<another run>/best_policy-<N>.weights.h5`
such a run starts from another run's policy.
`--outer_update=clipped_surrogate` replaces TRPO by `PolicyMAML`'s clipped
surrogate with Adam (`--outer_learning_rate`, `--clip_ratio`); with
`--inner_objective=likelihood_ratio` that is ProMP's meta-objective without
its inner KL penalty (kept run: `.../clipped_surrogate_from_1160`).

`--weights=best` evaluates, as the paper did, the policy of the training
epoch with the best mean return after adaptation on its training tasks
(`tfmeta.rl.training.BestPolicy`; a run continued from a part that kept
none keeps the best from there on) into `best_metrics.json` (and
`best_<file>` for the other splits).

The MuJoCo families run on Gymnasium's v5 environments and MuJoCo 3, not on
the paper's rllab ones (see `tfmeta.rl.mujoco_families`): compare in kind.
They observe as rllab's did unless `--observation=gymnasium`; a run keeps
the observation it started with (the runs kept in
`benchmarks/meta_rl_runs/gymnasium_observation/` continue with
`--observation=gymnasium --run_dir=benchmarks/meta_rl_runs/gymnasium_observation`).
Their rewards score Gymnasium's forward velocity and their episodes start from
Gymnasium's initial-state noise unless `--velocity=rllab` and
`--reset_noise=rllab` (the paper's; a run keeps what it started with too).
Prints tables (where a task is one number, a velocity or a direction, also the
trained policy's returns by task value), and as its last line one JSON object
with the figures, each task's returns included.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import machine
import result_cache
import task_groups

from tfmeta import adaptation, evaluation, rl
from tfmeta.data.temporary_files import write_atomically
from tfmeta.rl import figures, recipes, training
from tfmeta.rl.task_batched import TaskBatchedModel

flags.DEFINE_list("families", ["navigation_2d"], f"Task families: {rl.families.names()}.")
flags.DEFINE_string(
    "run_dir", "tfmeta_runs/meta_rl", "Where runs are kept (one folder per family)."
)
flags.DEFINE_float("budget_minutes", None, "Training time per family, all parts together.")
flags.DEFINE_integer("iterations", None, "Meta-iterations (default: the paper's).")
flags.DEFINE_integer("eval_tasks", 40, "Held-out tasks.")
flags.DEFINE_list(
    "eval_learning_rates", None, "Step sizes of evaluation steps 1, 2, 3 (default: the recipe's)."
)
flags.DEFINE_enum(
    "eval_split",
    "test",
    ["test", "train", "paper"],
    "Evaluate on held-out test tasks, on other training tasks (to choose evaluation settings "
    "without looking at the test tasks), or on the 40 tasks of the paper's test script "
    "(navigation_2d, halfcheetah_vel, halfcheetah_dir).",
)
flags.DEFINE_enum(
    "observation",
    "rllab",
    ["rllab", "gymnasium"],
    "MuJoCo families: the paper's rllab observation or Gymnasium's own "
    "(tfmeta.rl.mujoco_families); a run continues with the one it started with.",
)
flags.DEFINE_enum(
    "velocity",
    "gymnasium",
    ["gymnasium", "rllab"],
    "MuJoCo families: the forward velocity the reward scores, Gymnasium's (the torso's) or the "
    "paper's rllab one (the robot's centre of mass; tfmeta.rl.mujoco_families); a run "
    "continues with the one it started with.",
)
flags.DEFINE_enum(
    "reset_noise",
    "gymnasium",
    ["gymnasium", "rllab"],
    "MuJoCo families: the initial-state noise, Gymnasium's or the paper's rllab one "
    "(tfmeta.rl.mujoco_families); a run continues with the one it started with.",
)
flags.DEFINE_enum(
    "baseline_fit",
    "own_task",
    ["own_task", "previous_task"],
    "Each task's baseline fitted on its own rollouts, or on the previous task's as in the "
    "paper's code (tfmeta.rl.LinearFeatureBaseline); keep it when continuing a run.",
)
flags.DEFINE_bool(
    "first_order",
    False,
    "Drop the second-order terms of the meta-gradient (PolicyMAML(first_order=True)); keep it "
    "when continuing a run.",
)
flags.DEFINE_enum(
    "inner_objective",
    "log_likelihood",
    list(rl.policy_gradient.INNER_OBJECTIVES),
    "The inner step's objective: the paper's log-likelihood, or ProMP's likelihood ratio (the "
    "same step; its meta-gradient keeps the curvature's score-function term; "
    "tfmeta.rl.PolicyMAML). A run continued with the other objective trains with it from "
    "there (the direction run kept in meta_rl_runs/likelihood_ratio_from_195).",
)
flags.DEFINE_enum(
    "learner",
    "maml",
    ["maml", "pretrained", "oracle"],
    "MAML, or one of the paper's baselines: one policy pretrained on all tasks (fine-tuned in "
    "evaluation), or an oracle that observes the task (not adapted).",
)
flags.DEFINE_enum(
    "weights",
    "last",
    ["last", "best"],
    "Evaluate the policy of the last meta-iteration, or that of the training epoch with the "
    "best mean return after adaptation (the paper's protocol; tfmeta.rl.training.BestPolicy), "
    "into best_<result file>.",
)
flags.DEFINE_float(
    "max_kl",
    None,
    "TRPO's KL bound (default: the recipe's). Like --inner_objective it may change between "
    "the parts of a run: a part continued with another bound is trained with it.",
)
flags.DEFINE_enum(
    "outer_update",
    "trpo",
    ["trpo", "clipped_surrogate"],
    "The outer update: the paper's TRPO, or PolicyMAML's clipped surrogate with Adam "
    "(--outer_learning_rate, --clip_ratio; with --inner_objective=likelihood_ratio, ProMP's "
    "meta-objective less its inner KL penalty). Keep it when continuing a run (its optimizer "
    "state is checkpointed); --initial_policy starts such a run from a TRPO run's policy.",
)
flags.DEFINE_float(
    "outer_learning_rate", 1e-3, "--outer_update=clipped_surrogate: Adam's step size (ProMP's)."
)
flags.DEFINE_float(
    "clip_ratio", 0.3, "--outer_update=clipped_surrogate: the surrogate's epsilon (ProMP's)."
)
flags.DEFINE_integer(
    "rollouts_per_task",
    None,
    "Trajectories per task for each inner step and the outer update in meta-training (the "
    "paper's fast batch size; default: the recipe's). Like --max_kl it may change between the "
    "parts of a run.",
    lower_bound=1,
)
flags.DEFINE_float(
    "inner_learning_rate",
    None,
    "The inner step size of meta-training (default: the recipe's); keep it when continuing "
    "a run. Evaluation takes --eval_learning_rates (default: the recipe's).",
)
flags.DEFINE_bool(
    "scale_advantages",
    True,
    "Scale each task's centred advantages to unit standard deviation, as the paper's code "
    "does; --noscale_advantages only centres them, so a task the policy nearly solves takes "
    "a smaller step, and step sizes are in the reward's units (PolicyMAML(scale_advantages="
    "False)). Like --max_kl it may change between the parts of a run.",
)
flags.DEFINE_bool(
    "learned_inner_learning_rates",
    False,
    "Meta-learn a step size for every weight of the policy, as Meta-SGD "
    "(PolicyMAML(learned_inner_learning_rates='per_parameter')), starting at the recipe's; keep "
    "it when continuing a run.",
)
flags.DEFINE_string(
    "initial_policy",
    None,
    "A policy weights file (e.g. another run's best_policy-<meta-iteration>.weights.h5) that "
    "a new run starts from instead of the recipe's random initialisation; a run that has "
    "checkpoints continues from them.",
)
flags.DEFINE_integer("seed", 0, "Seed of weights and training tasks.")
flags.DEFINE_bool("speed", False, "Measure sampling speed and one meta-iteration instead.")
flags.DEFINE_integer("speed_tasks", 40, "--speed: tasks of the measured meta-iteration.")
flags.DEFINE_integer(
    "env_processes",
    1,
    "MuJoCo families: processes that step the environments (tfmeta.rl.GymnasiumTaskFamily; "
    "the same rollouts for any number). With --speed and N > 1, sampling is also measured "
    "in one process, in the same run.",
    lower_bound=1,
)
FLAGS = flags.FLAGS

EVAL_SEED = 1_000_003  # held-out tasks: a stream the training tasks never use
VALIDATION_SEED = 7  # --eval_split=train: tasks of the training distribution, not the test ones
# --eval_split=paper: the tasks of the authors' test scripts (maml_examples/test_maml_point.py,
# test_maml_cheetah.py, test_maml_cheetah_direc.py): NumPy's global generator seeded with 1,
# 40 uniform draws; the direction environment runs backward for a draw below 1.
PAPER_TASKS = {
    "navigation_2d": lambda draw: draw(-0.5, 0.5, size=(40, 2)),
    "halfcheetah_vel": lambda draw: draw(0.0, 2.0, size=(40, 1)),
    "halfcheetah_dir": lambda draw: np.where(draw(0.0, 2.0, size=(40, 1)) < 1.0, -1.0, 1.0),
}
RESULT_FILES = {"test": "metrics.json", "train": "validation.json", "paper": "paper_tasks.json"}
RANDOM_INIT_FILE = "random_init.json"  # the untrained policy's evaluations, by their settings
# --learner: PolicyMAML arguments beside the recipe's, and whether the policy observes the task.
LEARNERS = {
    "maml": ({}, False),
    "pretrained": ({"inner_steps": 0}, False),
    "oracle": ({"inner_steps": 0, "eval_inner_steps": 0, "eval_inner_learning_rate": []}, True),
}


# Mean return over 40 test tasks after 0, 1, 2, 3 steps (None: not published).
PAPER = {
    "navigation_2d": {
        "MAML": [-40.4, -11.7, -3.3, -3.2],
        "random init": [-82.7, -58.0, None, None],
        "oracle": -2.3,
    },
    "halfcheetah_vel": {
        "MAML": [-129.5, -78.6, -66.6, -60.8],
        "pretrained": [-158.0, -135.4, None, None],
        "oracle": -54.5,
    },
    "halfcheetah_dir": {"MAML": [None, 293.2, None, None]},
    "ant_dir": {"MAML": [None, 499.1, None, None]},
}


def family_options(name: str) -> dict:
    """`--observation`, `--velocity`, `--reset_noise` and `--env_processes` for the MuJoCo
    families (none for a family that rolls out in one graph: 2D navigation)."""
    if rl.families.family_class(name).in_graph:
        return {}
    return {
        "observation": FLAGS.observation,
        "velocity": FLAGS.velocity,
        "reset_noise": FLAGS.reset_noise,
        "processes": FLAGS.env_processes,
    }


def build_learner(name: str) -> rl.PolicyMAML:
    """The family's recipe with this command's learner, seed, observation and evaluation
    settings."""
    learner_overrides, observe_task = LEARNERS[FLAGS.learner]
    overrides = {
        "baseline_fit": FLAGS.baseline_fit,
        "inner_objective": FLAGS.inner_objective,
        "first_order": FLAGS.first_order,
        "scale_advantages": FLAGS.scale_advantages,
    }
    if FLAGS.inner_learning_rate is not None:
        overrides["inner_learning_rate"] = FLAGS.inner_learning_rate
    if FLAGS.rollouts_per_task is not None:
        overrides["rollouts_per_task"] = FLAGS.rollouts_per_task
    if FLAGS.learned_inner_learning_rates:
        overrides["learned_inner_learning_rates"] = "per_parameter"
    if FLAGS.eval_learning_rates:
        overrides["eval_inner_learning_rate"] = [float(x) for x in FLAGS.eval_learning_rates]
    optimizer = None
    if FLAGS.outer_update == "clipped_surrogate":
        optimizer = keras.optimizers.Adam(FLAGS.outer_learning_rate)
        overrides["clip_ratio"] = FLAGS.clip_ratio
    overrides.update(learner_overrides)
    return recipes.build_learner(
        name,
        seed=FLAGS.seed,
        family_options=family_options(name),
        observe_task=observe_task,
        max_kl=FLAGS.max_kl,
        optimizer=optimizer,
        **overrides,
    )


def run_directory(name: str) -> str:
    """Where family `name`'s run of `--learner` is kept: MAML's under the family's name."""
    folder = name if FLAGS.learner == "maml" else f"{name}_{FLAGS.learner}"
    return os.path.join(FLAGS.run_dir, folder)


def evaluation_tasks(name: str, family: rl.TaskFamily) -> tf.Tensor:
    """Family `name`'s held-out test tasks; with `--eval_split=train` other training tasks;
    with `--eval_split=paper` the paper's test-script tasks."""
    if FLAGS.eval_split == "paper":
        tasks = PAPER_TASKS[name](np.random.RandomState(1).uniform)
        return family.check_tasks(tf.constant(tasks[: FLAGS.eval_tasks], tf.float32))
    seed = EVAL_SEED if FLAGS.eval_split == "test" else VALIDATION_SEED
    return family.sample_tasks(FLAGS.eval_tasks, seed=seed, split=FLAGS.eval_split)


def held_out_returns(name: str, learner: rl.PolicyMAML) -> tuple[list[dict], dict, list]:
    """Mean return with 95% CI over family `name`'s evaluation tasks after 0..3 steps, each
    task's (`{"tasks": [tasks, task_dim], "returns": [tasks, steps]}`), and the rollouts."""
    tasks = evaluation_tasks(name, learner.family)
    samplings = learner.adaptation_rollouts(tasks, seed=EVAL_SEED + 1)
    returns = np.stack([np.mean(r.returns(), axis=1) for r in samplings], axis=1)
    summary = [evaluation.mean_and_ci95(returns[:, step]) for step in range(returns.shape[1])]
    per_task = {"tasks": tasks.numpy().tolist(), "returns": returns.tolist()}
    return summary, per_task, samplings


def random_init_returns(name: str, directory: str) -> list[dict]:
    """`held_out_returns` of the family's untrained policy, kept in the run directory.

    The untrained policy's weights, the evaluation tasks and their rollouts are
    all seeded, so the figure depends on the settings alone (up to the float
    rounding of threaded reductions): a run in several parts computes it once
    (for Ant, minutes of sampling) and reads it back after.
    """
    learner = build_learner(name)
    # Meta-training's trajectories per task and step sizes not yet learned change nothing
    # here: the key holds the recipe's and leaves the latter out, as entries kept before did.
    config = learner.get_config()
    config.pop("learned_inner_learning_rates")
    if config["scale_advantages"]:  # the default, which entries kept before did not name
        config.pop("scale_advantages")
    config["rollouts_per_task"] = recipes.get(name).rollouts_per_task
    digest = hashlib.sha256()
    for weight in learner.policy.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    settings = {
        # The learner's own and its layers' names vary with what the process built before.
        "learner": {key: value for key, value in config.items() if key not in ("name", "policy")},
        "policy_weights_sha256": digest.hexdigest(),
        "seed": FLAGS.seed,
        "eval_split": FLAGS.eval_split,
        "eval_tasks": FLAGS.eval_tasks,
        "eval_seed": EVAL_SEED,
    }
    return result_cache.cached(
        os.path.join(directory, RANDOM_INIT_FILE),
        settings,
        lambda: held_out_returns(name, learner)[0],
    )


def _format(entry) -> str:
    if entry is None:
        return "-"
    if isinstance(entry, dict):
        return f"{entry['mean']:8.1f} +- {entry['ci95']:.1f}"
    return f"{entry:8.1f}"


def run_family(name: str) -> dict:
    recipe = recipes.get(name)
    directory = run_directory(name)
    # Test-task results in metrics.json; other splits' results apart (RESULT_FILES).
    prefix = "best_" if FLAGS.weights == "best" else ""
    metrics_path = os.path.join(directory, prefix + RESULT_FILES[FLAGS.eval_split])
    learner = build_learner(name)
    if FLAGS.initial_policy:  # a run with checkpoints restores its own weights over these
        learner.policy.load_weights(FLAGS.initial_policy)
    budget = None if FLAGS.budget_minutes is None else 60 * FLAGS.budget_minutes
    run = training.train(
        learner,
        directory,
        iterations=FLAGS.iterations or recipe.iterations,
        meta_batch_size=recipe.meta_batch_size,
        seed=FLAGS.seed,
        iterations_per_epoch=recipe.iterations_per_epoch,
        budget_seconds=budget,
        verbose=2,
    )
    best = training.restore_best(learner, directory) if FLAGS.weights == "best" else None
    start = time.perf_counter()
    returns, per_task, samplings = held_out_returns(name, learner)
    print(f"  evaluated in {time.perf_counter() - start:.0f} s", flush=True)
    # After training, which refuses a directory holding another family's run before writing.
    # The same protocol, untrained (MAML's runs; a baseline's would repeat it).
    random_init = random_init_returns(name, directory) if FLAGS.learner == "maml" else None
    if name == "navigation_2d":
        goals = np.asarray(per_task["tasks"])
        figures.plot_navigation_adaptation(
            samplings, goals, os.path.join(directory, "adaptation.png")
        )
    if run["history"]:
        figures.plot_learning_curve(
            run["history"],
            run["iterations_per_epoch"],
            os.path.join(directory, "learning_curve.png"),
            title=name,
        )
    result = {
        "family": name,
        "learner": FLAGS.learner,
        "meta_iterations": run["meta_iterations"],
        "train_minutes": run["train_seconds"] / 60,
        "weights": FLAGS.weights,
        "best": best,
        "eval_split": FLAGS.eval_split,
        "rollouts_per_task": learner.rollouts_per_task,
        "learned_inner_learning_rates": learner.learned_inner_learning_rates,
        "scale_advantages": learner.scale_advantages,
        "inner_learning_rate": learner.inner_learning_rate,
        "outer_update": FLAGS.outer_update,
        "initial_policy": FLAGS.initial_policy,
        "eval_learning_rates": learner.eval_learning_rates,
        "returns": returns,
        "per_task": per_task,
        "random_init": random_init,
        "paper": PAPER.get(name, {}),
        "processor": machine.processor(),
    }
    write_atomically(metrics_path, json.dumps(result, indent=1))
    return result


def print_returns(results: list[dict]) -> None:
    which = {"test": "held-out test", "train": "other training",
             "paper": "of the paper's test script"}[FLAGS.eval_split]
    print(f"\nMean return over {FLAGS.eval_tasks} {which} tasks (95% CI), after N adaptation steps")
    print(f"{'family':16} {'source':28} {'0':>16} {'1':>16} {'2':>16} {'3':>16}")
    for result in results:
        label = (
            f"tfmeta {result['learner']} ({result['meta_iterations']} it, "
            f"{result['train_minutes']:.0f} min)"
        )
        if result["best"] is not None:
            label = f"tfmeta {result['learner']} (best: it {result['best']['meta_iterations']})"
        rows = [(label, result["returns"])]
        if result["random_init"] is not None:
            rows.append(("tfmeta random init", result["random_init"]))
        for source, values in rows:
            print(
                f"{result['family']:16} {source:28} "
                + " ".join(f"{_format(v):>16}" for v in values)
            )
        for source, values in result["paper"].items():
            values = values if isinstance(values, list) else [values, None, None, None]
            print(
                f"{result['family']:16} {'paper ' + source:28} "
                + " ".join(f"{_format(v):>16}" for v in values)
            )


def print_by_task(results: list[dict]) -> None:
    """The trained policy's returns by task value, where a task is one number."""
    for result in results:
        tasks = np.asarray(result["per_task"]["tasks"])
        if tasks.shape[1] != 1:
            continue
        returns = np.asarray(result["per_task"]["returns"])
        print(f"\n{result['family']}: tfmeta {result['learner']}'s mean return by task, "
              "after N steps")
        print(f"{'task':>12} {'tasks':>6} " + " ".join(f"{n:>8}" for n in range(returns.shape[1])))
        for group in task_groups.by_value(tasks, returns):
            span = f"{group['task_from']:.2f}"
            if group["task_to"] != group["task_from"]:
                span += f"-{group['task_to']:.2f}"
            print(
                f"{span:>12} {group['tasks']:6d} "
                + " ".join(f"{value:8.1f}" for value in group["mean_returns"])
            )


def _plain_loop_steps_per_second(family, policy, tasks: np.ndarray, rollouts: int) -> float:
    """The reference: one Gymnasium environment at a time, the same policy once per step."""
    act = tf.function(
        lambda observation, seed: family.distribution.sample(policy(observation[None]), seed)[0]
    )
    steps, start = 0, time.perf_counter()
    for index, task in enumerate(tasks):
        env = family.make_env(task)
        for rollout in range(rollouts):
            observation, _ = env.reset(seed=index * rollouts + rollout)
            for t in range(family.horizon):
                seed = tf.constant([index * rollouts + rollout, t], tf.int64)
                action = act(tf.constant(observation, tf.float32), seed).numpy()
                observation, _, terminated, truncated, _ = env.step(action)
                steps += 1
                if terminated or truncated:
                    break
    return steps / (time.perf_counter() - start)


def _one_process_sampling(name: str, params, tasks, rollouts: int, seed) -> tuple:
    """The same sampling with every environment stepped in this process: (steps/s, rollouts)."""
    options = {**family_options(name), "processes": 1}
    learner = recipes.build_learner(name, seed=FLAGS.seed, family_options=options)
    learner.sample(params, tasks, tf.constant([0, 0], tf.int64), rollouts)  # create envs
    start = time.perf_counter()
    sampled = learner.sample(params, tasks, seed, rollouts)
    return float(np.sum(sampled.mask)) / (time.perf_counter() - start), sampled


def measure_speed(name: str) -> dict:
    """Sampling speed against a plain Gymnasium loop (and, with --env_processes > 1, against
    one process), and one meta-iteration by part."""
    recipe = recipes.get(name)
    learner = build_learner(name)
    family = learner.family
    tasks = family.sample_tasks(FLAGS.speed_tasks, seed=0)
    params = TaskBatchedModel.tile(adaptation.initial_weights(learner.policy)[0], len(tasks))
    rollouts = recipe.rollouts_per_task
    sample = tf.function(learner.sample) if family.in_graph else learner.sample
    sample(params, tasks, tf.constant([0, 0], tf.int64), rollouts)  # compile, create envs

    timings = {}
    start = time.perf_counter()
    pre = sample(params, tasks, tf.constant([0, 1], tf.int64), rollouts)
    timings["sampling before adaptation"] = time.perf_counter() - start
    steps = float(np.sum(pre.mask))
    batched_rate = steps / timings["sampling before adaptation"]
    batch = learner.policy_gradient_batch(pre)
    learner.adapt_step(params, batch, tf.constant(recipe.inner_learning_rate))  # compile
    start = time.perf_counter()
    adapted = learner.adapt_step(params, batch, tf.constant(recipe.inner_learning_rate))
    timings["inner step (all tasks)"] = time.perf_counter() - start
    start = time.perf_counter()
    post = sample(adapted, tasks, tf.constant([0, 2], tf.int64), rollouts)
    timings["sampling after adaptation"] = time.perf_counter() - start
    post_batch = learner.policy_gradient_batch(post)
    learner.outer_update([batch], post_batch)  # compile
    start = time.perf_counter()
    learner.outer_update([batch], post_batch)
    timings["outer update (TRPO)"] = time.perf_counter() - start

    result = {
        "family": name,
        "tasks": len(tasks),
        "rollouts_per_task": rollouts,
        "batched_steps_per_second": batched_rate,
        "meta_iteration_seconds": timings,
    }
    if not family.in_graph and FLAGS.env_processes > 1:
        rate, alone = _one_process_sampling(
            name, params, tasks, rollouts, tf.constant([0, 1], tf.int64)
        )
        result["env_processes"] = FLAGS.env_processes
        result["one_process_steps_per_second"] = rate
        result["same_rollouts_in_one_process"] = all(
            np.array_equal(a, b) for a, b in zip(pre, alone)
        )
    if not family.in_graph:
        reference_tasks = tasks.numpy()[:4]
        result["plain_loop_steps_per_second"] = _plain_loop_steps_per_second(
            family, learner.policy, reference_tasks, 2
        )
    return result


def print_speed(results: list[dict]) -> None:
    for result in results:
        print(
            f"\n{result['family']}: {result['tasks']} tasks x {result['rollouts_per_task']} "
            f"rollouts, {machine.describe()}"
        )
        processes = result.get("env_processes", 1)
        print(
            f"  tfmeta batched rollouts: {result['batched_steps_per_second']:10.0f} env steps/s "
            f"({processes} process{'es' if processes > 1 else ''})"
        )
        if "one_process_steps_per_second" in result:
            print(
                f"  the same in one process: {result['one_process_steps_per_second']:10.0f} "
                f"env steps/s (same rollouts: {result['same_rollouts_in_one_process']})"
            )
        if "plain_loop_steps_per_second" in result:
            print(
                f"  plain Gymnasium loop:    {result['plain_loop_steps_per_second']:10.0f} "
                "env steps/s (one environment at a time, same policy)"
            )
        total = sum(result["meta_iteration_seconds"].values())
        print(f"  one meta-iteration: {total:.1f} s")
        for part, seconds in result["meta_iteration_seconds"].items():
            print(f"    {part:28} {seconds:8.2f} s  ({100 * seconds / total:4.1f}%)")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines would bury the progress
    unknown = [name for name in FLAGS.families if name not in recipes.RECIPES]
    if unknown:
        raise app.UsageError(f"unknown families {unknown}; choose from {sorted(recipes.RECIPES)}")
    without_paper_tasks = [name for name in FLAGS.families if name not in PAPER_TASKS]
    if FLAGS.eval_split == "paper" and without_paper_tasks:
        raise app.UsageError(
            f"--eval_split=paper: no test-script tasks for {without_paper_tasks}; "
            f"they are known for {sorted(PAPER_TASKS)}"
        )
    if FLAGS.speed and FLAGS.learner != "maml":
        raise app.UsageError("--speed measures sampling, alike for every learner: drop --learner")
    if FLAGS.learner == "oracle" and FLAGS.eval_learning_rates:
        raise app.UsageError("--learner=oracle is evaluated without adaptation steps")
    if FLAGS.eval_split == "paper" and FLAGS.eval_tasks > 40:
        raise app.UsageError("--eval_split=paper: the paper's test scripts have 40 tasks")
    if FLAGS.outer_update != "trpo" and FLAGS.max_kl is not None:
        raise app.UsageError("--max_kl is TRPO's KL bound: drop it with --outer_update")
    if FLAGS.speed:
        results = [measure_speed(name) for name in FLAGS.families]
        print_speed(results)
    else:
        results = [run_family(name) for name in FLAGS.families]
        print_returns(results)
        print_by_task(results)
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
