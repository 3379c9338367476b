"""Meta-training and evaluation throughput on protocol P, in tasks per second.

Protocol P: Omniglot-shaped episodes (28x28x1), Conv-4 (4 x [conv 3x3, 64 filters,
stride 2, BatchNorm, ReLU], global mean pool, Dense 5), 5-way 1-shot with 15 queries
per class, meta-batch 32, 1 inner step at learning rate 0.4, Adam; steady state after
compilation. Episodes are random tensors held in memory, so the figure is the
learner's alone (benchmarks/episodes.py measures the input pipeline).

Each configuration runs in a fresh process, so its peak resident memory is its own.
On protocol P that peak is mostly TensorFlow itself and graph compilation;
`--shape=miniimagenet` (84x84x3, the 32-filter max-pool Conv-4) with more shots
makes the inner loop's activations dominate, which is where
`MAML(recompute_inner_steps=True)` (learner `maml_recompute`) matters.

    python benchmarks/throughput.py                                  # every learner
    python benchmarks/throughput.py --learners=maml --inner_steps=1,5,10
    python benchmarks/throughput.py --learners=maml,fomaml --parallel_tasks=1,10
    python benchmarks/throughput.py --learners=fomaml,fomaml_unfused_batch_norm  # fused BatchNorm
    python benchmarks/throughput.py --learners=maml,maml_keras_batch_norm  # exact 2nd-order BN
    python benchmarks/throughput.py --learners=maml,maml_recompute --inner_steps=1,5,10 \
        --shape=miniimagenet --shots=5 --meta_batch_size=4 --parallel_tasks=4

Prints a table, and as its last line one JSON object with the same figures.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_list(
    "learners", ["maml", "fomaml", "metasgd", "anil", "reptile", "protonet"], "Learners to time."
)
flags.DEFINE_list("inner_steps", ["1"], "Inner-step counts to time.")
flags.DEFINE_list("parallel_tasks", ["10"], "Tasks adapted concurrently (MetaLearner.parallel_tasks).")
flags.DEFINE_integer("meta_batch_size", 32, "Tasks per meta-update.")
flags.DEFINE_enum("shape", "omniglot", ["omniglot", "miniimagenet"],
                  "Episode images and Conv-4 variant: 28x28x1 with 64 filters, or 84x84x3 with 32.")
flags.DEFINE_integer("shots", 1, "Support examples per class.")
flags.DEFINE_integer("warmup", 3, "Meta-updates before timing (the first one compiles).")
flags.DEFINE_integer("repeats", 10, "Timed meta-updates (and evaluation batches).")
flags.DEFINE_string("worker", None, "Internal: time one 'learner/steps/parallel' configuration.")
FLAGS = flags.FLAGS

WAYS, QUERIES = 5, 15
SHAPES = {  # image shape, Conv-4 arguments
    "omniglot": ((28, 28, 1), dict(filters=64)),
    "miniimagenet": ((84, 84, 3), dict(filters=32, max_pool=True)),
}
INNER_LEARNING_RATE = 0.4
PUBLISHED_TASKS_PER_SECOND = {"maml": 18.5, "fomaml": 28.4}  # learn2learn 0.2.1, same protocol


def protocol_p_batch(meta_batch_size: int):
    """One meta-batch of random Omniglot-shaped episodes."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    image, _ = SHAPES[FLAGS.shape]
    shots = FLAGS.shots
    labels = np.tile(np.arange(WAYS, dtype=np.int32), (meta_batch_size, 1))
    return {
        "support_x": tf.constant(rng.random((meta_batch_size, WAYS * shots, *image), np.float32)),
        "support_y": tf.constant(np.repeat(labels, shots, axis=1)),
        "query_x": tf.constant(rng.random((meta_batch_size, WAYS * QUERIES, *image), np.float32)),
        "query_y": tf.constant(np.repeat(labels, QUERIES, axis=1)),
    }


def make_learner(name: str, inner_steps: int, parallel_tasks: int):
    import keras

    import tfmeta

    keras.utils.set_random_seed(0)
    common = dict(parallel_tasks=parallel_tasks)
    gradient = dict(inner_learning_rate=INNER_LEARNING_RATE, inner_steps=inner_steps, **common)
    image, conv4_args = SHAPES[FLAGS.shape]
    if name == "protonet":
        return tfmeta.ProtoNet(tfmeta.models.conv4(image, None, **conv4_args), ways=WAYS, **common)
    model = tfmeta.models.conv4(image, WAYS, **conv4_args)
    learners = {
        "maml": lambda: tfmeta.MAML(model, **gradient),
        "maml_recompute": lambda: tfmeta.MAML(model, recompute_inner_steps=True, **gradient),
        "fomaml": lambda: tfmeta.MAML(model, first_order=True, **gradient),
        "fomaml_unfused_batch_norm": lambda: _UnfusedBatchNormMAML(model, first_order=True,
                                                                   **gradient),
        "maml_keras_batch_norm": lambda: _KerasBatchNormMAML(model, **gradient),
        "metasgd": lambda: tfmeta.MetaSGD(model, **gradient),
        "anil": lambda: tfmeta.ANIL(model, **gradient),
        "reptile": lambda: tfmeta.Reptile(model, **gradient),
    }
    if name not in learners:
        raise ValueError(f"Unknown learner {name!r}; expected one of {sorted(learners) + ['protonet']}")
    return learners[name]()


def _UnfusedBatchNormMAML(*args, **kwargs):
    """MAML that never switches to TF's fused BatchNorm kernel: the reference for that lever."""
    import tfmeta

    class UnfusedBatchNormMAML(tfmeta.MAML):
        def _fused_batch_norm_is_exact(self, training):
            return False

    return UnfusedBatchNormMAML(*args, **kwargs)


def _KerasBatchNormMAML(*args, **kwargs):
    """Second-order MAML through Keras's own BatchNorm (whose second derivatives are 3% off):
    the reference for the cost of tfmeta's exact batch statistics."""
    import contextlib

    import tfmeta

    class KerasBatchNormMAML(tfmeta.MAML):
        def _batch_norm_kernel(self, training):
            if training:
                return contextlib.nullcontext()
            return super()._batch_norm_kernel(training)

    return KerasBatchNormMAML(*args, **kwargs)


def time_configuration(config: str) -> dict[str, float]:
    """Times one `learner/steps/parallel` configuration in this process."""
    import keras

    name, steps, parallel = config.split("/")
    learner = make_learner(name, int(steps), int(parallel))
    learner.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    batch = protocol_p_batch(FLAGS.meta_batch_size)
    start = time.perf_counter()
    learner.train_on_batch(batch)
    compile_seconds = time.perf_counter() - start
    for _ in range(FLAGS.warmup - 1):
        learner.train_on_batch(batch)
    train_seconds = _step_seconds(lambda: learner.train_on_batch(batch))
    learner.test_on_batch(batch)  # compiles evaluation
    eval_seconds = _step_seconds(lambda: learner.test_on_batch(batch))
    tasks = FLAGS.meta_batch_size
    return {
        "train_tasks_per_second": tasks / statistics.median(train_seconds),
        "eval_tasks_per_second": tasks / statistics.median(eval_seconds),
        "train_tasks_per_second_mean_step": tasks / statistics.mean(train_seconds),
        "eval_tasks_per_second_mean_step": tasks / statistics.mean(eval_seconds),
        "compile_seconds": compile_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _step_seconds(step) -> list[float]:
    """The times of `--repeats` calls. The table reports tasks/s at the median
    time, which other processes' bursts move least; the JSON also at the mean."""
    seconds = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_worker(config: str) -> dict[str, float]:
    """Runs one configuration in a fresh process, for its own peak memory."""
    argv = [sys.executable, os.path.abspath(__file__), f"--worker={config}",
            f"--meta_batch_size={FLAGS.meta_batch_size}", f"--warmup={FLAGS.warmup}",
            f"--shape={FLAGS.shape}", f"--shots={FLAGS.shots}",
            f"--repeats={FLAGS.repeats}"]
    result = subprocess.run(argv, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if result.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.worker:
        print(json.dumps(time_configuration(FLAGS.worker)))
        return
    results = {}
    for name in FLAGS.learners:
        for steps in FLAGS.inner_steps:
            for parallel in FLAGS.parallel_tasks:
                config = f"{name}/{steps}/{parallel}"
                results[config] = run_worker(config)
                print(f"measured {config}", file=sys.stderr, flush=True)
    protocol_p = FLAGS.shape == "omniglot" and FLAGS.shots == 1 and FLAGS.meta_batch_size == 32
    image, _ = SHAPES[FLAGS.shape]
    print(f"{'Protocol P: ' if protocol_p else ''}Conv-4 on {'x'.join(map(str, image))}, "
          f"5-way {FLAGS.shots}-shot, 15 queries, meta-batch {FLAGS.meta_batch_size}, "
          f"median of {FLAGS.repeats} steps, {os.cpu_count()} CPU cores")
    header = f"{'learner/inner steps/parallel':<30}{'train tasks/s':>14}{'vs learn2learn':>16}" \
             f"{'eval tasks/s':>14}{'compile s':>11}{'peak RSS MiB':>14}"
    print(header)
    for config, row in results.items():
        name, steps, _ = config.split("/")
        published = PUBLISHED_TASKS_PER_SECOND.get(name) if steps == "1" and protocol_p else None
        ratio = f"{row['train_tasks_per_second'] / published:.2f}x" if published else "-"
        print(f"{config:<30}{row['train_tasks_per_second']:>14.1f}{ratio:>16}"
              f"{row['eval_tasks_per_second']:>14.1f}{row['compile_seconds']:>11.1f}"
              f"{row['peak_rss_mib']:>14.0f}")
    if protocol_p:
        print("learn2learn 0.2.1 (published for this protocol and machine kind): "
              "MAML 18.5, FOMAML 28.4 tasks/s")
    print(json.dumps({"benchmark": "throughput", "shape": FLAGS.shape, "shots": FLAGS.shots,
                      "meta_batch_size": FLAGS.meta_batch_size, "repeats": FLAGS.repeats,
                      "results": results,
                      "learn2learn_tasks_per_second": PUBLISHED_TASKS_PER_SECOND}))


if __name__ == "__main__":
    app.run(main)
