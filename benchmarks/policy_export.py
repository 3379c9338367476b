"""Serving-time and on-device adaptation of meta-RL policies: latency and agreement, one run.

For each family, the paper's recipe builds a learner (policy freshly
initialised: the latencies do not depend on the weights), which is exported
twice: as a SavedModel (`tfmeta.exporters.policy.export_policy`, its `adapt`
signature) and as a LiteRT model (`export_policy_tflite`). Both adapt from
the same rollouts of the family's own environments (one test task, the
evaluation's rollouts per task, sampled with the meta-learned policy), and
the LiteRT model's adapted distribution is compared with the learner's.

    python benchmarks/policy_export.py                       # 2D navigation, HalfCheetah
    python benchmarks/policy_export.py --families=ant_dir --repeats=10

Prints a table and, as its last line, one JSON object with the same figures.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

import latency
import machine
from tfmeta import adaptation, rl
from tfmeta.exporters.policy import adapted_parameters, export_policy
from tfmeta.exporters.policy_tflite import export_policy_tflite
from tfmeta.exporters.tflite import interpreter, relative_difference
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_batched import TaskBatchedModel

FLAGS = flags.FLAGS
flags.DEFINE_list("families", ["navigation_2d", "halfcheetah_vel"],
                  f"Task families with a recipe: {sorted(rl.recipes.RECIPES)}.")
flags.DEFINE_integer("repeats", 20, "Timed calls per measurement.")
flags.DEFINE_integer("warmup", 3, "Untimed calls before timing.")


def own_rollouts(learner: rl.PolicyMAML) -> Rollouts:
    """The evaluation's rollouts of one test task with the meta-learned policy, as numpy."""
    tasks = learner.family.sample_tasks(1, seed=0, split="test")
    params = TaskBatchedModel.tile(adaptation.initial_weights(learner.policy)[0], 1)
    sampled = learner.sample(params, tasks, tf.constant([0, 1]), learner.eval_rollouts_per_task)
    return Rollouts(*[np.asarray(x[0]) for x in sampled])


def measure(family: str, directory: str) -> dict:
    learner = rl.recipes.build_learner(family)
    rollouts = own_rollouts(learner)
    observation = rollouts.observations[0, :1]
    row = {"family": family, "rollouts": int(rollouts.rewards.shape[0]),
           "horizon": int(rollouts.rewards.shape[1])}
    start = time.perf_counter()
    served = tf.saved_model.load(export_policy(learner, os.path.join(directory, family)))
    row["saved_model_export_s"] = time.perf_counter() - start
    path = os.path.join(directory, f"{family}.tflite")
    start = time.perf_counter()
    export_policy_tflite(learner, path, verification_rollouts=rollouts)
    row["tflite_export_s"] = time.perf_counter() - start
    row["tflite_kib"] = os.path.getsize(path) / 1024

    request = {**{k: tf.constant(v) for k, v in rollouts._asdict().items()},
               "new_observations": tf.constant(observation)}
    adapt = served.signatures["adapt"]
    row["saved_model_adapt_ms"] = latency.timed_ms(
        lambda: adapt(**request)["actions"].numpy(), FLAGS.repeats, FLAGS.warmup)
    device = interpreter(open(path, "rb").read(), num_threads=1)
    runners = {name: device.get_signature_runner(name) for name in ("adapt", "train_step", "act")}
    arrays = rollouts._asdict()
    for name, call in (
        ("adapt", lambda: runners["adapt"](**arrays, new_observations=observation)),
        ("train_step", lambda: runners["train_step"](**arrays)),
        ("act", lambda: runners["act"](observations=observation)),
    ):
        row[f"litert_{name}_ms_1_thread"] = latency.timed_ms(call, FLAGS.repeats, FLAGS.warmup)
    expected = adapted_parameters(learner, Rollouts(*[tf.constant(x) for x in rollouts]),
                                  tf.constant(observation)).numpy()
    received = runners["adapt"](**arrays, new_observations=observation)["distribution"]
    row["litert_relative_difference"] = relative_difference(received, expected)
    return row


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as directory:
        rows = [measure(family, directory) for family in FLAGS.families]
    print(f"Policy adaptation from one task's rollouts, one new observation per call; median "
          f"(p90) ms over {FLAGS.repeats} calls; LiteRT on one thread; {machine.describe()}")
    header = ["family", "rollouts x steps", "SavedModel adapt", "LiteRT adapt", "LiteRT train_step",
              "LiteRT act", "LiteRT vs learner", ".tflite KiB", "export s: SavedModel, TFLite"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))

    def cell(timing):
        return f"{timing['median']:.2f} ({timing['p90']:.2f})"

    for row in rows:
        print(f"| {row['family']} | {row['rollouts']} x {row['horizon']} | "
              f"{cell(row['saved_model_adapt_ms'])} | {cell(row['litert_adapt_ms_1_thread'])} | "
              f"{cell(row['litert_train_step_ms_1_thread'])} | "
              f"{cell(row['litert_act_ms_1_thread'])} | {row['litert_relative_difference']:.1e} | "
              f"{row['tflite_kib']:.0f} | "
              f"{row['saved_model_export_s']:.1f}, {row['tflite_export_s']:.1f} |")
    print(json.dumps({
        "benchmark": "policy_export",
        "processor": machine.processor(),
        "setup": {"families": FLAGS.families, "repeats": FLAGS.repeats, "warmup": FLAGS.warmup},
        "results": rows,
    }))


if __name__ == "__main__":
    app.run(main)
