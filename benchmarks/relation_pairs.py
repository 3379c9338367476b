"""Relation Network meta-update time: the relation module's first layer split, or on every pair.

`RelationNetwork` runs its relation module's first layer (a Conv2D or Dense on
the concatenated (class, example) pair) once per class and once per example
with the kernel split by halves, and forms only the sum per pair
(`tfmeta/learners/split_relation_module.py`). The reference is the same
learner with the same weights whose module starts with a linear `Activation`
layer, which the split does not look through: its first convolution runs on
every concatenated pair, as before the split.

The paper's networks on Omniglot-shaped synthetic episodes (28x28x1, random
pixels: the cost does not depend on them), the benchmark recipe's queries per
class, one episode per meta-update:

    python benchmarks/relation_pairs.py
    python benchmarks/relation_pairs.py --settings=5w1s,20w1s --threads=1

Prints the processor and a table of milliseconds per meta-update (the fastest
of `--rounds` rounds of `--updates` updates), and as its last line one JSON
object with the same figures.
"""

from __future__ import annotations

import json
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import machine
import tfmeta

# Sung et al.'s queries per class in meta-training (the benchmark recipe's).
QUERIES = {"5w1s": 19, "5w5s": 15, "20w1s": 10, "20w5s": 5}

FLAGS = flags.FLAGS
flags.DEFINE_list("settings", ["5w1s", "20w1s"], f"N-way K-shot settings, of {list(QUERIES)}.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TF's default).")
flags.DEFINE_integer("updates", 40, "Meta-updates per timed round.")
flags.DEFINE_integer("rounds", 3, "Timed rounds; the fastest is reported.")
flags.DEFINE_integer("filters", 64, "Channels of the embedding and the relation module.")


def _learner(ways: int, split: bool) -> tfmeta.RelationNetwork:
    keras.utils.set_random_seed(0)
    embedding = tfmeta.models.relation_embedding((28, 28, 1), filters=FLAGS.filters)
    module = tfmeta.models.relation_module(embedding.outputs[0].shape[1:], filters=FLAGS.filters)
    if not split:  # The same module behind an identity, so each pair runs it whole.
        inputs = keras.Input(module.inputs[0].shape[1:])
        module = keras.Model(inputs, module(keras.layers.Activation("linear")(inputs)))
    learner = tfmeta.RelationNetwork(embedding, module, ways=ways)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=tfmeta.losses.OneHotMeanSquaredError())
    return learner


def _episodes(ways: int, shots: int, queries: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.random([100 * 20, 28, 28]) * 255
    source = tfmeta.data.FewShotEpisodes.from_arrays(images, np.repeat(np.arange(100), 20),
                                                     scale=1 / 255)
    return source.episodes(ways=ways, shots=shots, queries=queries, meta_batch_size=1, seed=0)


def milliseconds_per_update(setting: str, split: bool) -> float:
    """The fastest round's mean time of one meta-update, after one warm-up round."""
    ways, shots = (int(part) for part in setting[:-1].split("w"))
    learner = _learner(ways, split)
    episodes = _episodes(ways, shots, QUERIES[setting])
    learner.fit(episodes, steps_per_epoch=FLAGS.updates // 2, verbose=0)  # traces and warms up
    rounds = []
    for _ in range(FLAGS.rounds):
        start = time.perf_counter()
        learner.fit(episodes, steps_per_epoch=FLAGS.updates, verbose=0)
        rounds.append((time.perf_counter() - start) / FLAGS.updates)
    return 1000 * min(rounds)


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.settings) - set(QUERIES))
    if unknown:
        raise app.UsageError(f"Unknown settings {unknown}; expected some of {list(QUERIES)}")
    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    rows = []
    for setting in FLAGS.settings:
        split = milliseconds_per_update(setting, split=True)
        pairs = milliseconds_per_update(setting, split=False)
        rows.append({"setting": setting, "queries_per_class": QUERIES[setting],
                     "split_ms": round(split, 1), "every_pair_ms": round(pairs, 1),
                     "speedup": round(pairs / split, 2)})
    print(f"Relation Network meta-update, paper networks ({FLAGS.filters} filters), "
          f"threads: {FLAGS.threads or 'default'}; {machine.describe()}")
    print(f"{'setting':8} {'queries':>7} {'split, ms':>10} {'every pair, ms':>15} {'speedup':>8}")
    for row in rows:
        print(f"{row['setting']:8} {row['queries_per_class']:7d} {row['split_ms']:10.1f} "
              f"{row['every_pair_ms']:15.1f} {row['speedup']:7.2f}x")
    print(json.dumps({"benchmark": "relation_pairs", "filters": FLAGS.filters,
                      "threads": FLAGS.threads, "updates": FLAGS.updates,
                      "rounds": FLAGS.rounds, "results": rows,
                      "processor": machine.processor(), "tensorflow": tf.__version__}))


if __name__ == "__main__":
    app.run(main)
