"""Distribution strategies for meta-training with `tf.distribute`.

The meta-batch is the unit that is split: each replica adapts its share of
the tasks, and the meta-gradient is the sum over replicas divided by the
global meta-batch (`MetaLearner.train_step`). Build the learner and compile
it inside `strategy.scope()`, then `fit` as usual; Keras distributes the
episode dataset with the strategy.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The strategy called `name`.

    - `default`: one device (TensorFlow's default strategy).
    - `mirrored`: every local GPU (or the CPU) of this machine.
    - `multi_worker`: one replica set per worker of the cluster in the
      `TF_CONFIG` environment variable; every worker runs the same program.

    Raises:
        ValueError: for an unknown name, or `multi_worker` without a valid
            `TF_CONFIG`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Expected a strategy in {list(STRATEGIES)}. Received: strategy={name!r}")


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "The multi_worker strategy reads the cluster from the TF_CONFIG environment "
            'variable, e.g. {"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}}. Received: TF_CONFIG unset or empty'
        )
    try:
        config = json.loads(raw)
        config["cluster"]["worker"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            "Expected TF_CONFIG to be JSON with cluster.worker and task.index. "
            f"Received: TF_CONFIG={raw!r}"
        ) from error


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, logs and exports.

    Every process but worker 0 of a multi-worker cluster is not the chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                    "chief" not in resolver.cluster_spec().as_dict())
