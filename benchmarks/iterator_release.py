"""tfmeta's episode pipelines with tf.data autotuning off (as built) and on: rate and release time.

tfmeta's episode pipelines turn tf.data's autotuning off
(`tfmeta/data/pipeline_options.py`): with it on, destroying an iterator joins
the autotuning thread, which can keep the caller waiting (rarely outside a
loaded process). This benchmark builds the same few-shot pipeline twice, as
tfmeta returns it and with autotuning switched back on, and reports for each
the meta-batches per second it delivers and the seconds `del iterator` takes
after the iterator sat idle for `--idle_seconds`:

    python benchmarks/iterator_release.py
    python benchmarks/iterator_release.py --idle_seconds=90 --threads=1

Prints the processor and a table, and as its last line one JSON object with
the same figures.
"""

from __future__ import annotations

import json
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

import machine
import tfmeta

FLAGS = flags.FLAGS
flags.DEFINE_float("idle_seconds", 70.0, "How long the iterators sit idle before deletion.")
flags.DEFINE_integer("batches", 200, "Meta-batches timed for the delivery rate.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TF's default).")


def _episodes() -> tf.data.Dataset:
    """5-way 1-shot, 15 queries, 32 tasks per meta-batch, over 100 random 28x28 classes."""
    rng = np.random.default_rng(0)
    images = rng.random([100 * 20, 28, 28]) * 255
    source = tfmeta.data.FewShotEpisodes.from_arrays(images, np.repeat(np.arange(100), 20),
                                                     scale=1 / 255)
    return source.episodes(ways=5, shots=1, queries=15, meta_batch_size=32, seed=0)


def _with_autotuning(episodes: tf.data.Dataset) -> tf.data.Dataset:
    """`episodes` with tf.data's autotuning switched back on."""
    options = tf.data.Options()
    options.autotune.enabled = True
    return episodes.with_options(options)


def batches_per_second(episodes: tf.data.Dataset) -> float:
    iterator = iter(episodes)
    for _ in range(20):  # warm-up
        next(iterator)
    start = time.perf_counter()
    for _ in range(FLAGS.batches):
        next(iterator)
    return FLAGS.batches / (time.perf_counter() - start)


def main(argv):
    del argv
    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    episodes = _episodes()
    pipelines = {"tfmeta (autotune off)": episodes, "autotune on": _with_autotuning(episodes)}
    for dataset, enabled in zip(pipelines.values(), (False, True)):
        assert dataset.options().autotune.enabled is enabled
    rows = [{"pipeline": name, "batches_per_second": round(batches_per_second(dataset), 1)}
            for name, dataset in pipelines.items()]
    iterators = [iter(dataset) for dataset in pipelines.values()]
    for iterator in iterators:
        for _ in range(3):
            next(iterator)
    time.sleep(FLAGS.idle_seconds)
    for row in rows:
        iterator = iterators.pop(0)
        start = time.perf_counter()
        del iterator
        row["release_seconds"] = round(time.perf_counter() - start, 3)
    print(f"Idle tf.data iterator release, 5-way 1-shot episodes, 32 tasks per meta-batch, "
          f"idle {FLAGS.idle_seconds:g} s, threads: {FLAGS.threads or 'default'}; "
          f"{machine.describe()}")
    print(f"{'pipeline':24} {'meta-batches/s':>15} {'release, s':>11}")
    for row in rows:
        print(f"{row['pipeline']:24} {row['batches_per_second']:15.1f} "
              f"{row['release_seconds']:11.3f}")
    print(json.dumps({"benchmark": "iterator_release", "idle_seconds": FLAGS.idle_seconds,
                      "batches": FLAGS.batches, "threads": FLAGS.threads, "results": rows,
                      "processor": machine.processor(), "tensorflow": tf.__version__}))


if __name__ == "__main__":
    app.run(main)
