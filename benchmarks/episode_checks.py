"""What the in-graph meta-batch checks cost, against a meta-update, on protocol P.

Every learner step runs `tfmeta.data.episode.check_meta_batch_values` (at least
one task, support example and query; finite inputs; class ids in 0..N-1). This
times the checks alone on one protocol-P meta-batch (32 tasks of 5-way 1-shot
with 15 queries per class, 28x28x1) as the median of `--repeats` calls of a
`tf.function` that runs them minus one that does not, and the median MAML
meta-update on the same batch (Conv-4, one inner step, second order), so the
share is the checks' part of a step.

    python benchmarks/episode_checks.py

Prints a table, and as its last line one JSON object with the same figures.
"""

from __future__ import annotations

import json
import statistics
import time

from absl import app, flags

flags.DEFINE_integer("repeats", 200, "Timed calls of the checks.")
flags.DEFINE_integer("steps", 10, "Timed MAML meta-updates.")
FLAGS = flags.FLAGS

TASKS, WAYS, SHOTS, QUERIES = 32, 5, 1, 15


def _batch():
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(WAYS, dtype=np.int32), (TASKS, 1))
    return {
        "support_x": tf.constant(rng.random((TASKS, WAYS * SHOTS, 28, 28, 1), np.float32)),
        "support_y": tf.constant(np.repeat(labels, SHOTS, axis=1)),
        "query_x": tf.constant(rng.random((TASKS, WAYS * QUERIES, 28, 28, 1), np.float32)),
        "query_y": tf.constant(np.repeat(labels, QUERIES, axis=1)),
    }


def _median_seconds(call, repeats: int) -> float:
    call()  # traces
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import tfmeta
    from tfmeta.data import episode

    batch = _batch()
    predictions = tf.TensorSpec([WAYS * QUERIES, WAYS], tf.float32)

    def first_pixels(episodes):  # reads both inputs, so the checks must run before it
        return tf.reduce_sum(episodes["support_x"][:, 0, 0]) + tf.reduce_sum(
            episodes["query_x"][:, 0, 0]
        )

    checked = tf.function(lambda b: first_pixels(episode.check_meta_batch_values(b, predictions)))
    unchecked = tf.function(first_pixels)
    with_checks = _median_seconds(lambda: checked(batch).numpy(), FLAGS.repeats)
    without = _median_seconds(lambda: unchecked(batch).numpy(), FLAGS.repeats)

    keras.utils.set_random_seed(0)
    maml = tfmeta.MAML(tfmeta.models.conv4((28, 28, 1), WAYS), inner_learning_rate=0.4)
    maml.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    step = _median_seconds(lambda: maml.train_on_batch(batch), FLAGS.steps)

    checks_ms = 1000 * (with_checks - without)
    result = {
        "checks_ms": round(checks_ms, 3),
        "maml_step_ms": round(1000 * step, 1),
        "share_percent": round(100 * checks_ms / (1000 * step), 2),
    }
    print(f"{'checks per meta-batch':<24}{result['checks_ms']:>10.3f} ms")
    print(f"{'MAML meta-update':<24}{result['maml_step_ms']:>10.1f} ms")
    print(f"{'share of a step':<24}{result['share_percent']:>10.2f} %")
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
