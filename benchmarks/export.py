"""Exported model sizes and the latency of adapting to one episode, SavedModel vs LiteRT.

For each model (Conv-4 with Omniglot shapes, and an MLP over flattened
Omniglot images), exports a MAML learner as a SavedModel (TF Serving layout)
and as a TFLite model, then times `adapt_and_predict` on one N-way K-shot
episode: the SavedModel signature reloaded with `tf.saved_model.load`, and
the LiteRT interpreter's signature runner. Reports the median over repeats
(after warm-up calls), the sizes on disk, the export times and the largest
difference between the two runtimes' outputs. Weights are freshly
initialized: latency and size do not depend on training.

Prints a table, then, as its last line, one JSON object with the same figures.

    python benchmarks/export.py --repeats=50 --threads=1
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import tfmeta
from tfmeta.exporters import export_saved_model, export_tflite, tflite

FLAGS = flags.FLAGS
flags.DEFINE_integer("ways", 5, "Classes per episode.")
flags.DEFINE_integer("shots", 1, "Support examples per class.")
flags.DEFINE_integer("queries", 5, "Query examples in the episode.")
flags.DEFINE_integer("inner_steps", 3, "Evaluation inner steps (Finn et al.: 3 on Omniglot).")
flags.DEFINE_float("inner_learning_rate", 0.4, "Inner learning rate.")
flags.DEFINE_integer("repeats", 30, "Timed calls per measurement (the median is reported).")
flags.DEFINE_integer("warmup", 3, "Untimed calls before timing.")
flags.DEFINE_integer("threads", 1, "Threads for TensorFlow (intra-op) and for LiteRT.")
flags.DEFINE_list("models", ["conv4", "mlp"], "Models to benchmark: conv4, mlp.")


def build_learner(name: str) -> tfmeta.MAML:
    """A compiled MAML learner over Conv-4 (Omniglot) or an MLP over flattened Omniglot."""
    keras.utils.set_random_seed(0)
    if name == "conv4":
        net = tfmeta.models.conv4((28, 28, 1), num_classes=FLAGS.ways)
    elif name == "mlp":  # Finn et al.'s non-convolutional Omniglot network, without BatchNorm
        net = tfmeta.models.mlp(28 * 28, (256, 128, 64, 64), FLAGS.ways)
    else:
        raise ValueError(f"Expected a model in ['conv4', 'mlp']. Received: {name!r}")
    learner = tfmeta.MAML(net, inner_learning_rate=FLAGS.inner_learning_rate,
                          eval_inner_steps=FLAGS.inner_steps)
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner


def median_ms(call) -> float:
    for _ in range(FLAGS.warmup):
        call()
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def directory_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def benchmark(name: str, directory: str) -> dict:
    learner = build_learner(name)
    input_shape = tuple(learner.model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    support = FLAGS.ways * FLAGS.shots
    episode = {
        "support_x": rng.standard_normal((support, *input_shape)).astype(np.float32),
        "support_y": np.tile(np.arange(FLAGS.ways, dtype=np.int32), FLAGS.shots),
        "query_x": rng.standard_normal((FLAGS.queries, *input_shape)).astype(np.float32),
    }

    start = time.perf_counter()
    version = export_saved_model(learner, os.path.join(directory, name), ways=FLAGS.ways,
                                 shots=FLAGS.shots)
    saved_model_export_s = time.perf_counter() - start
    tflite_path = os.path.join(directory, f"{name}.tflite")
    start = time.perf_counter()
    export_tflite(learner, tflite_path, ways=FLAGS.ways, shots=FLAGS.shots,
                  query_size=FLAGS.queries)
    tflite_export_s = time.perf_counter() - start

    adapt = tf.saved_model.load(version).signatures["adapt_and_predict"]
    tensors = {key: tf.constant(value) for key, value in episode.items()}
    saved_model_ms = median_ms(lambda: adapt(**tensors)["outputs"].numpy())
    saved_model_outputs = adapt(**tensors)["outputs"].numpy()

    with open(tflite_path, "rb") as file:
        content = file.read()
    runner = tflite.interpreter(content, num_threads=FLAGS.threads).get_signature_runner(
        "adapt_and_predict")
    litert_ms = median_ms(lambda: runner(**episode))
    litert_outputs = runner(**episode)["outputs"]

    return {
        "model": name,
        "parameters": int(sum(np.prod(v.shape) for v in learner.model.trainable_variables)),
        "saved_model_bytes": directory_bytes(version),
        "tflite_bytes": len(content),
        "saved_model_export_s": round(saved_model_export_s, 2),
        "tflite_export_s": round(tflite_export_s, 2),
        "saved_model_adapt_predict_ms": round(saved_model_ms, 2),
        "litert_adapt_predict_ms": round(litert_ms, 2),
        "max_abs_diff_litert_vs_saved_model": float(
            np.max(np.abs(litert_outputs - saved_model_outputs))),
        "max_abs_output": float(np.max(np.abs(saved_model_outputs))),
    }


def main(argv: list[str]) -> None:
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory() as directory:
        rows = [benchmark(name, directory) for name in FLAGS.models]
    setup = (f"MAML {FLAGS.ways}-way {FLAGS.shots}-shot, {FLAGS.queries} queries, "
             f"{FLAGS.inner_steps} inner steps, median of {FLAGS.repeats}, "
             f"{FLAGS.threads} thread(s)")
    print(setup)
    header = ("model", "params", "SavedModel", ".tflite", "export SM/TFL s",
              "SavedModel ms", "LiteRT ms", "max |diff| (max |logit|)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print(f"| {row['model']} | {row['parameters']:,} | {row['saved_model_bytes']:,} B | "
              f"{row['tflite_bytes']:,} B | {row['saved_model_export_s']} / "
              f"{row['tflite_export_s']} | {row['saved_model_adapt_predict_ms']:.2f} | "
              f"{row['litert_adapt_predict_ms']:.2f} | "
              f"{row['max_abs_diff_litert_vs_saved_model']:.1e} ({row['max_abs_output']:.3g}) |")
    print(json.dumps({
        "setup": {"ways": FLAGS.ways, "shots": FLAGS.shots, "queries": FLAGS.queries,
                  "inner_steps": FLAGS.inner_steps, "repeats": FLAGS.repeats,
                  "threads": FLAGS.threads},
        "results": rows,
    }))


if __name__ == "__main__":
    app.run(main)
