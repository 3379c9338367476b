"""Meta-training and evaluation throughput on protocol P, in tasks per second.

Protocol P: Omniglot-shaped episodes (28x28x1), Conv-4 (4 x [conv 3x3, 64 filters,
stride 2, BatchNorm, ReLU], global mean pool, Dense 5), 5-way 1-shot with 15 queries
per class, meta-batch 32, 1 inner step at learning rate 0.4, Adam; steady state after
compilation; BatchNorm normalises queries with their own batch's statistics
(`--query_statistics=transductive`, learn2learn's convention; the learners' default is
"support"). Episodes are random tensors held in memory, so the figure is the learner's
alone (benchmarks/episodes.py measures the input pipeline).

The peer is measured in the same run on the same machine, never taken from elsewhere:
after tfmeta's configurations, benchmarks/reference_maml_torch.py (learn2learn's MAML
loop written in PyTorch) runs in its own process on the same protocol, second order for
the second-order MAML rows and first order for the first-order ones, and the ratio is
tfmeta's tasks/s over the reference's from this run. Without PyTorch (`pip install
.[bench]`) no ratio is printed. The processor, the load average before and after, the
FLOP per task and the share of the processor's nominal FP32 peak (benchmarks/flops.py)
are printed with the figures, and beside it the share of a measured ceiling: a large
float32 matmul in TensorFlow on every core, in its own process (a processor that runs
above its reported clock exceeds its nominal peak). Only a run on an otherwise idle
machine gives a ratio worth quoting: when other processes take cores, the reference's
OpenMP threads (as many as there are cores) wait at every barrier and its tasks/s falls by
an order of magnitude.

tfmeta's workers set TensorFlow's CPU threads as `tfmeta train` does (`--cpu_threads`,
`tfmeta.cpu_threads`: by default one thread per op and the meta-batch's tasks side by
side); `--cpu_threads=per_op` times TensorFlow's default pools instead.

Each configuration runs in a fresh process, so its peak resident memory is its own.
On protocol P that peak is mostly TensorFlow itself and graph compilation;
`--shape=miniimagenet` (84x84x3, the 32-filter max-pool Conv-4) with more shots
makes the inner loop's activations dominate, which is where
`MAML(recompute_inner_steps=True)` (learner `maml_recompute`) matters.

    python benchmarks/throughput.py                                  # every learner
    python benchmarks/throughput.py --learners=maml --inner_steps=1,5,10
    python benchmarks/throughput.py --learners=maml,fomaml --parallel_tasks=1,10
    python benchmarks/throughput.py --learners=maml,fomaml --cpu_threads=per_op  # TF's pools
    python benchmarks/throughput.py --learners=fomaml,fomaml_unfused_batch_norm  # fused BatchNorm
    python benchmarks/throughput.py --learners=maml,maml_keras_batch_norm  # exact 2nd-order BN
    python benchmarks/throughput.py --learners=maml,maml_exact_query_pass  # fused query pass
    python benchmarks/throughput.py --learners=maml,maml_mixed_bfloat16  # bf16 (AMX) compute
    python benchmarks/throughput.py --learners=maml,maml_recompute --inner_steps=1,5,10 \
        --shape=miniimagenet --shots=5 --meta_batch_size=4 --parallel_tasks=4

Prints a table, and as its last line one JSON object with the same figures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

import flops
import machine

# The worker that measures flops.matmul_ceiling in a process of its own.
MATMUL_CEILING = "matmul_ceiling"

flags.DEFINE_list(
    "learners", ["maml", "fomaml", "metasgd", "anil", "reptile", "protonet"], "Learners to time."
)
flags.DEFINE_list("inner_steps", ["1"], "Inner-step counts to time.")
flags.DEFINE_list("parallel_tasks", ["10"],
                  "Tasks adapted concurrently (MetaLearner.parallel_tasks).")
flags.DEFINE_integer("meta_batch_size", 32, "Tasks per meta-update.")
flags.DEFINE_enum("shape", "omniglot", ["omniglot", "miniimagenet"],
                  "Episode images and Conv-4 variant: 28x28x1 with 64 filters, or 84x84x3 with 32.")
flags.DEFINE_integer("shots", 1, "Support examples per class.")
flags.DEFINE_enum("query_statistics", "transductive", ["transductive", "support", "moving"],
                  "BatchNorm statistics of the query pass (tfmeta.query_statistics).")
flags.DEFINE_enum("cpu_threads", "auto", ["auto", "per_task", "per_op"],
                  "tfmeta's TensorFlow CPU threads (tfmeta.cpu_threads; auto: per_task for "
                  "meta-batches of 2 or more on a CPU-only machine).")
flags.DEFINE_bool("reference", True, "Time the PyTorch reference after tfmeta (protocol P).")
flags.DEFINE_integer("warmup", 3, "Meta-updates before timing (the first one compiles).")
flags.DEFINE_integer("repeats", 10, "Timed meta-updates (and evaluation batches).")
flags.DEFINE_string("worker", None, "Internal: time one 'learner/steps/parallel' configuration "
                    f"(or '{MATMUL_CEILING}': measure flops.matmul_ceiling).")
FLAGS = flags.FLAGS

WAYS, QUERIES = 5, 15
SHAPES = {  # image shape, Conv-4 arguments
    "omniglot": ((28, 28, 1), dict(filters=64)),
    "miniimagenet": ((84, 84, 3), dict(filters=32, max_pool=True)),
}
INNER_LEARNING_RATE = 0.4
REFERENCE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "reference_maml_torch.py")
# The reference loop each tfmeta learner is compared with (one inner step only).
REFERENCE_OF = {"maml": "maml", "maml_recompute": "maml", "maml_keras_batch_norm": "maml",
                "maml_exact_query_pass": "maml",
                "fomaml": "fomaml", "fomaml_unfused_batch_norm": "fomaml",
                "maml_mixed_bfloat16": "maml", "fomaml_mixed_bfloat16": "fomaml"}
# A learner name with this suffix builds its network under Keras's "mixed_bfloat16" policy.
MIXED_BFLOAT16 = "_mixed_bfloat16"


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
    if name.endswith(MIXED_BFLOAT16):
        keras.config.set_dtype_policy("mixed_bfloat16")
        name = name.removesuffix(MIXED_BFLOAT16)
    common = dict(parallel_tasks=parallel_tasks, query_statistics=FLAGS.query_statistics)
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
        "maml_exact_query_pass": lambda: _ExactQueryPassMAML(model, **gradient),
        "metasgd": lambda: tfmeta.MetaSGD(model, **gradient),
        "anil": lambda: tfmeta.ANIL(model, **gradient),
        "reptile": lambda: tfmeta.Reptile(model, **gradient),
    }
    if name not in learners:
        known = sorted(learners) + ["protonet"]
        raise ValueError(f"Unknown learner {name!r}; expected one of {known}")
    return learners[name]()


def _UnfusedBatchNormMAML(*args, **kwargs):
    """MAML that never switches to TF's fused BatchNorm kernel: the reference for that lever."""
    import tfmeta

    class UnfusedBatchNormMAML(tfmeta.MAML):
        def _fused_batch_norm_is_exact(self, training):
            return False

        def _fused_query_pass(self, training):
            return False

    return UnfusedBatchNormMAML(*args, **kwargs)


def _KerasBatchNormMAML(*args, **kwargs):
    """Second-order MAML through Keras's own BatchNorm (whose second derivatives are 3% off):
    the reference for the cost of tfmeta's exact batch statistics."""
    import contextlib

    import tfmeta

    class KerasBatchNormMAML(tfmeta.MAML):
        def batch_norm_kernel(self, training):
            if training:
                return contextlib.nullcontext()
            return super().batch_norm_kernel(training)

        def _fused_query_pass(self, training):
            return False

    return KerasBatchNormMAML(*args, **kwargs)


def _ExactQueryPassMAML(*args, **kwargs):
    """MAML whose query pass keeps the step's own BatchNorm (second order: the exact one of
    its support passes) instead of TF's fused kernel: the reference for that lever."""
    import tfmeta

    class ExactQueryPassMAML(tfmeta.MAML):
        def _fused_query_pass(self, training):
            return False

    return ExactQueryPassMAML(*args, **kwargs)


def time_configuration(config: str) -> dict[str, float]:
    """Times one `learner/steps/parallel` configuration in this process."""
    import keras

    import tfmeta

    cpu_threads = tfmeta.cpu_threads.configure(FLAGS.cpu_threads, FLAGS.meta_batch_size)
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
        "cpu_threads": f"{cpu_threads} ({tfmeta.cpu_threads.describe()})",
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
            f"--query_statistics={FLAGS.query_statistics}", f"--repeats={FLAGS.repeats}",
            f"--cpu_threads={FLAGS.cpu_threads}"]
    return _run_json(argv, config, dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def run_reference(learner: str) -> dict[str, float]:
    """Times the PyTorch reference's `maml` or `fomaml` loop in a fresh process."""
    argv = [sys.executable, REFERENCE_SCRIPT, f"--meta_batch_size={FLAGS.meta_batch_size}",
            f"--warmup={FLAGS.warmup}", f"--repeats={FLAGS.repeats}"]
    return _run_json(argv + (["--first_order"] if learner == "fomaml" else []),
                     f"reference {learner}", dict(os.environ))


def _run_json(argv: list[str], what: str, env: dict[str, str]) -> dict:
    """Runs `argv` and parses the JSON object on its last line of output."""
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def load_average() -> float:
    """The 1-minute load average (other processes share the cores with the benchmark)."""
    return os.getloadavg()[0]


def main(argv):
    del argv
    if FLAGS.worker == MATMUL_CEILING:
        print(json.dumps(flops.matmul_ceiling()))
        return
    if FLAGS.worker:
        print(json.dumps(time_configuration(FLAGS.worker)))
        return
    load_before = load_average()
    results = {}
    for name in FLAGS.learners:
        for steps in FLAGS.inner_steps:
            for parallel in FLAGS.parallel_tasks:
                config = f"{name}/{steps}/{parallel}"
                results[config] = run_worker(config)
                print(f"measured {config}", file=sys.stderr, flush=True)
    protocol_p = FLAGS.shape == "omniglot" and FLAGS.shots == 1
    references, reference_note = measure_references(protocol_p)
    ceiling = _run_json([sys.executable, os.path.abspath(__file__), f"--worker={MATMUL_CEILING}"],
                        "the matmul ceiling", dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    load_after = load_average()
    peak = flops.nominal_fp32_peak()
    rows = {config: figures(config.split("/")[0], config.split("/")[1] == "1" and protocol_p,
                            row, references, peak, ceiling)
            for config, row in results.items()}
    print_table(results, rows, references, reference_note, peak, ceiling,
                (load_before, load_after))
    print(json.dumps({"benchmark": "throughput", "shape": FLAGS.shape, "shots": FLAGS.shots,
                      "meta_batch_size": FLAGS.meta_batch_size, "repeats": FLAGS.repeats,
                      "query_statistics": FLAGS.query_statistics,
                      "processor": machine.processor(), "nominal_fp32_peak": peak,
                      "fp32_matmul_ceiling": ceiling,
                      "load_average": {"before": load_before, "after": load_after},
                      "results": {config: {**results[config], **rows[config]}
                                  for config in results},
                      "reference": references, "reference_note": reference_note}))


def measure_references(protocol_p: bool) -> tuple[dict[str, dict], str | None]:
    """The PyTorch reference's figures for the loops the chosen learners compare with.

    Returns `(figures by "maml"/"fomaml", why it did not run or None)`.
    """
    wanted = sorted({REFERENCE_OF[name] for name in FLAGS.learners if name in REFERENCE_OF})
    if not wanted or not protocol_p or "1" not in FLAGS.inner_steps:
        return {}, None
    if not FLAGS.reference:
        return {}, "reference not run: --noreference"
    if importlib.util.find_spec("torch") is None:
        return {}, "reference not run: install .[bench]"
    references = {}
    for learner in wanted:
        references[learner] = run_reference(learner)
        print(f"measured reference {learner}", file=sys.stderr, flush=True)
    return references, None


def figures(name: str, one_step_protocol_p: bool, row: dict, references: dict,
            peak: dict, ceiling: dict) -> dict:
    """The ratio to this run's reference and the shares of FP32 peak, where they apply."""
    loop = REFERENCE_OF.get(name)
    if loop is None or not one_step_protocol_p:
        return {}
    out = arithmetic(loop, row["train_tasks_per_second"], peak, ceiling)
    if loop in references:
        out["vs_reference"] = (row["train_tasks_per_second"]
                               / references[loop]["train_tasks_per_second"])
    return out


def arithmetic(loop: str, tasks_per_second: float, peak: dict, ceiling: dict) -> dict:
    """FLOP per task of a protocol-P `maml`/`fomaml` task, and its shares of the nominal
    peak and of the measured matmul ceiling."""
    flop = flops.task_flop(WAYS * FLAGS.shots, WAYS * QUERIES, first_order=loop == "fomaml")
    gflops = tasks_per_second * flop / 1e9
    return {"gflop_per_task": flop / 1e9, "gflops": gflops,
            "share_of_fp32_peak": gflops / peak["gflops"] if peak["gflops"] else None,
            "share_of_matmul_ceiling": gflops / ceiling["gflops"]}


def print_table(results: dict, rows: dict, references: dict, reference_note: str | None,
                peak: dict, ceiling: dict, loads: tuple[float, float]) -> None:
    """The human-readable table: tfmeta's rows, then the reference's, then the context."""
    image, _ = SHAPES[FLAGS.shape]
    protocol_p = FLAGS.shape == "omniglot" and FLAGS.shots == 1 and FLAGS.meta_batch_size == 32
    print(f"{'Protocol P: ' if protocol_p else ''}Conv-4 on {'x'.join(map(str, image))}, "
          f"5-way {FLAGS.shots}-shot, 15 queries, meta-batch {FLAGS.meta_batch_size}, "
          f"{FLAGS.query_statistics} query statistics, median of {FLAGS.repeats} steps")
    print(f"Processor: {machine.describe()}; load average {loads[0]:.2f} before, "
          f"{loads[1]:.2f} after")
    threads = sorted({row["cpu_threads"] for row in results.values()})
    print(f"tfmeta's CPU threads: {', '.join(threads)}; the reference: PyTorch's default")
    print(f"{'configuration':<32}{'train tasks/s':>14}{'vs reference':>14}{'GFLOP/task':>12}"
          f"{'% FP32 peak':>13}{'% matmul':>10}{'eval tasks/s':>14}{'compile s':>11}"
          f"{'peak RSS MiB':>14}")

    def share(row, key="share_of_fp32_peak"):
        value = row.get(key)
        return f"{100 * value:.1f}" if value is not None else "-"

    for config, row in results.items():
        extra = rows[config]
        ratio = f"{extra['vs_reference']:.2f}x" if "vs_reference" in extra else "-"
        flop = f"{extra['gflop_per_task']:.2f}" if extra else "-"
        print(f"{config:<32}{row['train_tasks_per_second']:>14.1f}{ratio:>14}{flop:>12}"
              f"{share(extra):>13}{share(extra, 'share_of_matmul_ceiling'):>10}"
              f"{row['eval_tasks_per_second']:>14.1f}"
              f"{row['compile_seconds']:>11.1f}{row['peak_rss_mib']:>14.0f}")
    for loop, row in references.items():
        extra = arithmetic(loop, row["train_tasks_per_second"], peak, ceiling)
        print(f"{'PyTorch ' + row['torch'] + ' reference ' + loop:<32}"
              f"{row['train_tasks_per_second']:>14.1f}{'1.00x':>14}"
              f"{extra['gflop_per_task']:>12.2f}{share(extra):>13}"
              f"{share(extra, 'share_of_matmul_ceiling'):>10}{'-':>14}{'-':>11}"
              f"{row['peak_rss_mib']:>14.0f}")
    if reference_note:
        print(reference_note)
    print(f"Nominal FP32 peak {peak['gflops']:.0f} GFLOP/s = {peak['formula']} "
          "(benchmarks/flops.py)")
    print(f"Measured FP32 ceiling {ceiling['gflops']:.0f} GFLOP/s ({flops.MATMUL_SIZE} x "
          f"{flops.MATMUL_SIZE} float32 matmul in TensorFlow, every core): the '% matmul' "
          "column")


if __name__ == "__main__":
    app.run(main)
