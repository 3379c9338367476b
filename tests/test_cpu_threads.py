"""tfmeta.cpu_threads: which pools each policy picks, that they take effect in a fresh
process, that a started runtime refuses other pools with the fix, and that a meta-step
computes the same with tasks side by side as with every op split over the cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfmeta import cpu_threads
from tfmeta.cli import options


def _run_fresh(code: str) -> dict:
    """Runs `code` in a new Python process (TensorFlow's pools are fixed once it starts)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TF_NUM_")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=300, env=dict(env, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("meta_batch_size, cores, gpus, expected", [
    (2, 2, [], cpu_threads.PER_TASK),
    (32, 16, [], cpu_threads.PER_TASK),
    (1, 2, [], cpu_threads.PER_OP),  # one task per update: nothing to run beside it
    (32, 1, [], cpu_threads.PER_OP),  # one core: nothing to run it on
    (32, 2, ["GPU:0"], cpu_threads.PER_OP),  # the GPU runs the ops
])
def test_auto_runs_tasks_side_by_side_only_where_there_are_tasks_and_cores(
        monkeypatch, meta_batch_size, cores, gpus, expected):
    for name in cpu_threads.ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpu_threads, "available_cores", lambda: cores)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: gpus)
    assert cpu_threads.resolve(cpu_threads.AUTO, meta_batch_size) == expected


@pytest.mark.parametrize("variable", cpu_threads.ENVIRONMENT_VARIABLES)
def test_auto_leaves_pools_that_the_environment_sets(monkeypatch, variable):
    monkeypatch.setattr(cpu_threads, "available_cores", lambda: 2)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [])
    monkeypatch.setenv(variable, "1")
    assert cpu_threads.resolve(cpu_threads.AUTO, 32) == cpu_threads.PER_OP
    assert cpu_threads.resolve(cpu_threads.PER_TASK, 32) == cpu_threads.PER_TASK


@pytest.mark.parametrize("policy", [cpu_threads.PER_TASK, cpu_threads.PER_OP])
def test_an_explicit_policy_is_kept(policy):
    assert cpu_threads.resolve(policy, 1) == policy
    assert cpu_threads.resolve(policy, 32) == policy


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match=r"`policy` to be one of .*per_task.*'per_thread'"):
        cpu_threads.resolve("per_thread", 2)
    with pytest.raises(ValueError, match=r"`meta_batch_size` to be an integer >= 1.*=0"):
        cpu_threads.configure(cpu_threads.AUTO, 0)


def test_the_command_offers_the_same_policies():
    # tfmeta.cli.options names them without importing TensorFlow (for `tfmeta --help`).
    assert tuple(options.flags.FLAGS["cpu_threads"].parser.enum_values) == cpu_threads.POLICIES
    assert options.RunOptions().cpu_threads == cpu_threads.AUTO
    assert "cpu_threads" in options.RESUMABLE_CHANGES  # how a run computes, not what


def test_per_task_sets_the_pools_before_the_first_op_and_a_started_runtime_refuses():
    figures = _run_fresh("""
        import json
        import tensorflow as tf
        from tfmeta import cpu_threads
        applied = cpu_threads.configure("per_task")
        pools = [tf.config.threading.get_intra_op_parallelism_threads(),
                 tf.config.threading.get_inter_op_parallelism_threads()]
        tf.ones(2)  # starts the runtime
        again = cpu_threads.configure("per_task")  # the same pools: nothing to change
        try:
            cpu_threads.configure("per_op")
            refusal = None
        except RuntimeError as error:
            refusal = str(error)
        print(json.dumps(dict(applied=applied, pools=pools, again=again, refusal=refusal,
                              cores=cpu_threads.available_cores())))
    """)
    assert figures["applied"] == figures["again"] == cpu_threads.PER_TASK
    assert figures["pools"] == [1, figures["cores"]]
    assert "already started, with intra-op / inter-op pools of 1 /" in figures["refusal"]
    assert "configure('per_op') before the first op runs" in figures["refusal"]


def test_a_meta_step_computes_the_same_with_tasks_side_by_side():
    """MAML (second order) and Reptile, three meta-updates each on one meta-batch, under
    both policies: the same weights up to float32 reordering of the kernels' sums (SGD:
    Adam's first steps would blow a rounding difference in a tiny gradient up to a step)."""
    code = """
        import json, sys
        import keras, numpy as np
        import tfmeta
        tfmeta.cpu_threads.configure("{policy}")
        rng = np.random.default_rng(0)
        labels = np.tile(np.repeat(np.arange(3), 2), (4, 1)).astype(np.int32)
        batch = dict(support_x=rng.random((4, 6, 12, 12, 1), np.float32), support_y=labels,
                     query_x=rng.random((4, 6, 12, 12, 1), np.float32), query_y=labels)
        weights = []
        for learner_class in (tfmeta.MAML, tfmeta.Reptile):
            keras.utils.set_random_seed(0)
            net = tfmeta.models.conv4((12, 12, 1), num_classes=3, filters=8)
            learner = learner_class(net, inner_learning_rate=0.1, inner_steps=2)
            learner.compile(optimizer=keras.optimizers.SGD(0.1),
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            for _ in range(3):
                learner.train_on_batch(batch)
            weights.append(np.concatenate([np.ravel(w) for w in net.get_weights()]).tolist())
        print(json.dumps(weights))
    """
    per_task = _run_fresh(code.format(policy=cpu_threads.PER_TASK))
    per_op = _run_fresh(code.format(policy=cpu_threads.PER_OP))
    for side_by_side, split in zip(per_task, per_op):
        np.testing.assert_allclose(side_by_side, split, rtol=1e-4, atol=1e-5)
