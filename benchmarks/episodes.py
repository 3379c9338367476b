"""How fast Omniglot episodes come out of `tfmeta.data`.

Measures, on the real Omniglot (`../shared/data/omniglot/omniglot.tar.gz`
relative to the repository, or --omniglot):

- the time to extract the archive, to decode the 32,460 PNGs into the 28x28
  cache (cold, in a fresh cache folder), and to load them again (warm);
- episodes per second of the Vinyals train split (4400 classes with
  rotations), for 5-way 1-shot and 20-way 5-shot, 15 queries, meta-batches of
  32, consumed as fast as possible;
- Meta-Dataset variable episodes (`tfmeta.data.variable_episodes`, the
  "small" and "meta_dataset" configs) of the same split, and fixed and
  variable episodes of a synthetic 84x84x3 source (64 classes of 100 random
  images: the shapes of mini-ImageNet, without its files), next to the rate
  at which ProtoNet (Conv-4) meta-trains on the same variable episodes.

    python benchmarks/episodes.py
    python benchmarks/episodes.py --batches=200 --cache_dir=/tmp/tfmeta-bench

Prints a table, and as its last line one JSON object with the same figures.
`episodes_per_second()` is the hook to compare with a learner's training rate.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import tensorflow as tf
from absl import app, flags

import tfmeta.data

REPO_ROOT = Path(__file__).resolve().parents[1]
OMNIGLOT_CANDIDATES = (
    REPO_ROOT.parent / "shared/data/omniglot/omniglot.tar.gz",
    REPO_ROOT / "shared/data/omniglot/omniglot.tar.gz",
)
CONFIGS = ((5, 1), (20, 5))

flags.DEFINE_string(
    "omniglot", None, "Omniglot .tar.gz or extracted ImageFolder (default: the shared copy)."
)
flags.DEFINE_string(
    "cache_dir", None, "Cache folder to use (default: a fresh temporary one, removed after)."
)
flags.DEFINE_integer("meta_batch_size", 32, "Tasks per meta-batch.")
flags.DEFINE_integer("queries", 15, "Query images per class.")
flags.DEFINE_integer("batches", 100, "Meta-batches timed per configuration.")
flags.DEFINE_integer("warmup", 5, "Meta-batches drawn before timing.")
flags.DEFINE_integer("variable_meta_batch_size", 4, "Tasks per meta-batch of variable episodes.")
flags.DEFINE_integer("learner_steps", 10, "ProtoNet meta-training steps timed per source (0: none).")
FLAGS = flags.FLAGS


def episodes_per_second(
    source: tfmeta.data.FewShotEpisodes,
    ways: int,
    shots: int,
    queries: int = 15,
    meta_batch_size: int = 32,
    num_batches: int = 100,
    warmup: int = 5,
    seed: int = 0,
) -> float:
    """Episodes (tasks) per second that `source.episodes(...)` yields, consumed as fast as possible.

    Args:
        source: the episode source, e.g. `tfmeta.data.omniglot(...)["train"]`.
        ways, shots, queries, meta_batch_size: the episode shape.
        num_batches: meta-batches timed.
        warmup: meta-batches drawn first and not timed (pipeline start-up).
        seed: episode seed.

    Returns:
        Tasks per second (meta-batches per second x `meta_batch_size`).
    """
    iterator = iter(
        source.episodes(ways, shots, queries, meta_batch_size=meta_batch_size, seed=seed)
    )
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
    batch["query_x"].numpy()  # make sure the last one is materialised
    return num_batches * meta_batch_size / (time.perf_counter() - start)


def variable_episodes_per_second(
    source: tfmeta.data.FewShotEpisodes,
    config: tfmeta.data.VariableEpisodeConfig,
    meta_batch_size: int = 4,
    num_batches: int = 100,
    warmup: int = 5,
    seed: int = 0,
) -> float:
    """Episodes per second that `tfmeta.data.variable_episodes(source, config)` yields."""
    data = tfmeta.data.variable_episodes(source, config, meta_batch_size=meta_batch_size, seed=seed)
    return _rate(iter(data), meta_batch_size, num_batches, warmup)


def protonet_tasks_per_second(
    source: tfmeta.data.FewShotEpisodes,
    config: tfmeta.data.VariableEpisodeConfig,
    meta_batch_size: int = 4,
    steps: int = 10,
    seed: int = 0,
) -> float:
    """Tasks per second ProtoNet (Conv-4, max-pooled at 84x84) meta-trains on variable episodes.

    The episodes are drawn first and held in memory, so only the learner is timed.
    """
    import keras

    import tfmeta

    height, _, channels = source.image_shape
    net = tfmeta.models.conv4(
        source.image_shape, num_classes=None, filters=32 if height > 28 else 64,
        max_pool=height > 28,
    )
    learner = tfmeta.ProtoNet(net, ways=config.max_ways)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = tfmeta.data.variable_episodes(source, config, meta_batch_size=meta_batch_size, seed=seed)
    batches = list(data.take(steps + 1))
    learner.train_on_batch(batches[0])  # trace
    start = time.perf_counter()
    for batch in batches[1:]:
        learner.train_on_batch(batch)
    return steps * meta_batch_size / (time.perf_counter() - start)


def _rate(iterator, meta_batch_size: int, num_batches: int, warmup: int) -> float:
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
    batch["query_x"].numpy()
    return num_batches * meta_batch_size / (time.perf_counter() - start)


def _synthetic_84(classes: int = 64, per_class: int = 100) -> tfmeta.data.FewShotEpisodes:
    """Random 84x84x3 uint8 images: mini-ImageNet's shapes (64 of its training classes' count)."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, [classes * per_class, 84, 84, 3], np.uint8)
    data = tfmeta.data.ClassImages(images, [per_class] * classes, [f"c{i}" for i in range(classes)])
    return tfmeta.data.FewShotEpisodes(data, name="synthetic_84x84x3")


def _variable_rows(source, label: str) -> dict[str, dict[str, float]]:
    """Pipeline and ProtoNet rates of `source` under each named variable config."""
    rows = {}
    for name, config in tfmeta.data.VARIABLE_EPISODE_CONFIGS.items():
        row = {"episodes_per_s": variable_episodes_per_second(
            source, config, FLAGS.variable_meta_batch_size, FLAGS.batches, FLAGS.warmup)}
        if FLAGS.learner_steps:
            row["protonet_tasks_per_s"] = protonet_tasks_per_second(
                source, config, FLAGS.variable_meta_batch_size, FLAGS.learner_steps)
        rows[f"{label}_variable_{name}"] = {k: round(v, 2) for k, v in row.items()}
    return rows


def _find_omniglot() -> Path:
    if FLAGS.omniglot:
        return Path(FLAGS.omniglot)
    for path in OMNIGLOT_CANDIDATES:
        if path.exists():
            return path
    raise FileNotFoundError(
        "Expected the Omniglot archive at ../shared/data/omniglot/omniglot.tar.gz (relative to the "
        "repository) or --omniglot. Received: none found"
    )


def main(argv):
    del argv
    data = _find_omniglot()
    cache_dir = (
        Path(FLAGS.cache_dir) if FLAGS.cache_dir else Path(tempfile.mkdtemp(prefix="tfmeta-bench-"))
    )
    try:
        start = time.perf_counter()
        if data.is_file():  # the .tar.gz: extract once, then read the ImageFolder
            data = tfmeta.data.extract_archive(data, cache_dir) / "omniglot"
        extract = time.perf_counter() - start
        start = time.perf_counter()
        tfmeta.data.omniglot_class_images(data, cache_dir=cache_dir)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        tfmeta.data.omniglot_class_images(data, cache_dir=cache_dir)
        warm = time.perf_counter() - start
        start = time.perf_counter()
        sources = tfmeta.data.omniglot(data, "vinyals", cache_dir=cache_dir)
        split = time.perf_counter() - start
        rates = {}
        for ways, shots in CONFIGS:
            rates[f"{ways}way_{shots}shot"] = episodes_per_second(
                sources["train"],
                ways,
                shots,
                FLAGS.queries,
                FLAGS.meta_batch_size,
                FLAGS.batches,
                FLAGS.warmup,
            )
        variable = _variable_rows(sources["train"], "omniglot")
        synthetic = _synthetic_84()
        rates_84 = {"synthetic84_5way_1shot": episodes_per_second(
            synthetic, 5, 1, FLAGS.queries, FLAGS.meta_batch_size, FLAGS.batches, FLAGS.warmup)}
        variable.update(_variable_rows(synthetic, "synthetic84"))
    finally:
        if not FLAGS.cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)

    results = {
        "benchmark": "omniglot_episodes",
        "extract_s": round(extract, 3),
        "cache_cold_s": round(cold, 3),
        "cache_warm_s": round(warm, 3),
        "vinyals_sources_warm_s": round(split, 3),
        "meta_batch_size": FLAGS.meta_batch_size,
        "queries": FLAGS.queries,
        "timed_meta_batches": FLAGS.batches,
        "episodes_per_s": {name: round(rate, 1) for name, rate in rates.items()},
        "meta_batches_per_s": {
            name: round(rate / FLAGS.meta_batch_size, 2) for name, rate in rates.items()
        },
        "synthetic84_episodes_per_s": {name: round(r, 1) for name, r in rates_84.items()},
        "variable_meta_batch_size": FLAGS.variable_meta_batch_size,
        "variable": variable,
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
    }
    print("Omniglot episodes (tfmeta.data)")
    print(f"  extract the archive (32,460 files):         {extract:8.2f} s")
    print(f"  cache, cold (decode + resize 32,460 PNGs):  {cold:8.2f} s")
    print(f"  cache, warm (load the .npz files):          {warm:8.2f} s")
    print(f"  vinyals split sources from warm cache:      {split:8.2f} s")
    print(f"  {'episodes':<22}{'episodes/s':>12}{'meta-batches/s':>16}")
    for (ways, shots), (name, rate) in zip(CONFIGS, rates.items()):
        label = f"{ways}-way {shots}-shot {FLAGS.queries}-query"
        print(f"  {label:<22}{rate:>12.1f}{rate / FLAGS.meta_batch_size:>16.2f}")
    print(
        f"  (meta-batches of {FLAGS.meta_batch_size}, {FLAGS.batches} timed, {os.cpu_count()} CPUs)"
    )
    for name, rate in rates_84.items():
        print(f"  {name:<36}{rate:>12.1f} episodes/s")
    print(f"  {'variable episodes':<36}{'episodes/s':>12}{'ProtoNet tasks/s':>18}")
    for name, row in variable.items():
        learner = row.get("protonet_tasks_per_s", float("nan"))
        print(f"  {name:<36}{row['episodes_per_s']:>12.1f}{learner:>18.2f}")
    print(f"  (variable: meta-batches of {FLAGS.variable_meta_batch_size})")
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
