"""TensorFlow's CPU thread pools for meta-learning: a meta-batch's tasks side by side.

By default TensorFlow splits every op over all cores (its intra-op pool) and runs
independent ops concurrently on another pool (inter-op). A meta-batch's tasks are
independent (`MetaLearner` maps them with `tf.map_fn`, `parallel_tasks` at a time),
and their ops are small: a few images per convolution, too few to split well over
cores. One thread per op with as many ops at once as cores (`per_task`) runs the
tasks side by side instead, one core each. Where one episode makes an update
(ProtoNet and the one-pass learners' recipes), nothing runs beside it, and splitting
its ops (`per_op`, TensorFlow's default) is better.

Both pools are fixed when TensorFlow's runtime starts, so choose before the first op
runs (before building a model):

```python
import tfmeta
tfmeta.cpu_threads.configure("per_task")
```
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfmeta.argument_validation import check_choice, check_integer

AUTO, PER_TASK, PER_OP = "auto", "per_task", "per_op"
POLICIES = (AUTO, PER_TASK, PER_OP)
# TensorFlow's own settings of its pools; `auto` leaves a process that sets them to them.
ENVIRONMENT_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), as TensorFlow counts them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API on this platform
        return os.cpu_count() or 1


def resolve(policy: str, meta_batch_size: int) -> str:
    """`per_task` or `per_op` for `policy`: `auto` is `per_task` when a meta-batch holds
    tasks to run side by side (`meta_batch_size >= 2`) on a machine with more than one
    core and no GPU (where the GPU runs the ops, the CPU pools matter little), unless
    `ENVIRONMENT_VARIABLES` set TensorFlow's pools: then those (`per_op`)."""
    check_choice("policy", policy, POLICIES)
    check_integer("meta_batch_size", meta_batch_size)
    if policy != AUTO:
        return policy
    if any(os.environ.get(name) for name in ENVIRONMENT_VARIABLES):
        return PER_OP
    side_by_side = meta_batch_size >= 2 and available_cores() >= 2
    return PER_TASK if side_by_side and not tf.config.list_physical_devices("GPU") else PER_OP


def configure(policy: str, meta_batch_size: int = 2, cores: int | None = None) -> str:
    """Sets TensorFlow's CPU thread pools by `policy`; returns the policy applied.

    - `per_task`: one thread per op, `cores` ops at once (default: `available_cores()`).
    - `per_op`: TensorFlow's default pools (each op over all cores, or as the
      `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` environment variables say).
    - `auto`: `resolve(policy, meta_batch_size)`.

    Raises:
        ValueError: for an unknown policy, a bad `meta_batch_size` or `cores`.
        RuntimeError: when TensorFlow's runtime already started with other pools
            (configure before the first op runs).
    """
    applied = resolve(policy, meta_batch_size)
    cores = check_integer("cores", cores, allow_none=True) or available_cores()
    intra_op, inter_op = (1, cores) if applied == PER_TASK else (0, 0)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as error:
        raise RuntimeError(
            f"TensorFlow's runtime already started, with intra-op / inter-op pools of "
            f"{tf.config.threading.get_intra_op_parallelism_threads()} / "
            f"{tf.config.threading.get_inter_op_parallelism_threads()} threads (0: "
            f"TensorFlow's default); call tfmeta.cpu_threads.configure({policy!r}) before "
            "the first op runs (before building a model)"
        ) from error
    return applied


def describe() -> str:
    """The pools in force, e.g. `intra-op 1, inter-op 2 threads` (0: TensorFlow's default)."""
    return (f"intra-op {tf.config.threading.get_intra_op_parallelism_threads()}, inter-op "
            f"{tf.config.threading.get_inter_op_parallelism_threads()} threads")
