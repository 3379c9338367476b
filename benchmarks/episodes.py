"""How fast Omniglot episodes come out of `tfmeta.data`, and how much memory drawing them takes.

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
  at which ProtoNet (Conv-4) meta-trains on the same variable episodes;
- the peak memory of each configuration. Every configuration runs in a fresh
  process of its own (spawned, so nothing is inherited from the others): it
  imports TensorFlow and loads its source, the kernel's peak-RSS mark (VmHWM)
  is then reset to the current RSS (`/proc/self/clear_refs`), and after the
  timed meta-batches VmHWM is read. "peak RSS" is the whole process at its
  highest while drawing episodes (TensorFlow, the loaded images, the
  pipeline); "rise" is that peak minus the RSS just before the pipeline was
  built, i.e. what the pipeline itself (buffers, prefetched meta-batches,
  tf.data's runtime) adds. Where clear_refs cannot be written, the peak is
  the process's peak since it started and the rise is not given. ProtoNet is
  timed after the peak is read, so the learner's memory is not in it.

    python benchmarks/episodes.py
    python benchmarks/episodes.py --batches=200 --cache_dir=/tmp/tfmeta-bench

Prints the processor and a table, and as its last line one JSON object with the
same figures. `episodes_per_second()` is the hook to compare with a learner's
training rate.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import tensorflow as tf
from absl import app, flags

import machine
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
flags.DEFINE_integer("learner_steps", 10,
                     "ProtoNet meta-training steps timed per source (0: none).")
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One row of the table: a source and its episodes (fixed ways and shots, or variable)."""

    source: str  # "omniglot" (the Vinyals train split) or "synthetic84"
    ways: int = 0
    shots: int = 0
    variable: str | None = None  # a `tfmeta.data.VARIABLE_EPISODE_CONFIGS` name

    @property
    def name(self) -> str:
        if self.variable:
            return f"{self.source}_variable_{self.variable}"
        return f"{self.source}_{self.ways}way_{self.shots}shot"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a measuring process needs (passed explicitly: a spawned process has no parsed flags)."""

    omniglot: str  # the extracted ImageFolder
    cache_dir: str
    queries: int
    meta_batch_size: int
    variable_meta_batch_size: int
    batches: int
    warmup: int
    learner_steps: int


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
    data = source.episodes(ways, shots, queries, meta_batch_size=meta_batch_size, seed=seed)
    return _rate(iter(data), meta_batch_size, num_batches, warmup)


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

    height = source.image_shape[0]
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


def measure(config: Configuration, settings: Settings) -> dict[str, float]:
    """Episodes/s, peak RSS and (for variable episodes) ProtoNet's rate of one configuration.

    Meant to run in a fresh process of its own (see `measure_in_own_process`): the peak is
    the process's, so anything measured before in the same process would be in it.
    """
    source = _load_source(config.source, settings)
    rss_before = _reset_peak_rss_mib()
    if config.variable:
        variable_config = tfmeta.data.VARIABLE_EPISODE_CONFIGS[config.variable]
        rate = variable_episodes_per_second(
            source, variable_config, settings.variable_meta_batch_size, settings.batches,
            settings.warmup)
    else:
        rate = episodes_per_second(source, config.ways, config.shots, settings.queries,
                                   settings.meta_batch_size, settings.batches, settings.warmup)
    peak = _peak_rss_mib()
    row = {"episodes_per_s": round(rate, 2), "peak_rss_mib": round(peak)}
    if rss_before is not None:
        row["peak_rss_rise_mib"] = round(peak - rss_before)
    if config.variable and settings.learner_steps:
        row["protonet_tasks_per_s"] = round(protonet_tasks_per_second(
            source, variable_config, settings.variable_meta_batch_size, settings.learner_steps), 2)
    return row


def measure_in_own_process(config: Configuration, settings: Settings) -> dict[str, float]:
    """`measure(config, settings)` in a freshly spawned Python process, so its peak is its own."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(measure, config, settings).result()


def _rate(iterator, meta_batch_size: int, num_batches: int, warmup: int) -> float:
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
    batch["query_x"].numpy()  # make sure the last one is materialised
    return num_batches * meta_batch_size / (time.perf_counter() - start)


def _load_source(name: str, settings: Settings) -> tfmeta.data.FewShotEpisodes:
    if name == "omniglot":
        return tfmeta.data.omniglot(settings.omniglot, "vinyals", cache_dir=settings.cache_dir)[
            "train"]
    return _synthetic_84()


def _synthetic_84(classes: int = 64, per_class: int = 100) -> tfmeta.data.FewShotEpisodes:
    """Random 84x84x3 uint8 images: mini-ImageNet's shapes (64 of its training classes' count)."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, [classes * per_class, 84, 84, 3], np.uint8)
    data = tfmeta.data.ClassImages(images, [per_class] * classes, [f"c{i}" for i in range(classes)])
    return tfmeta.data.FewShotEpisodes(data, name="synthetic_84x84x3")


def _reset_peak_rss_mib() -> float | None:
    """Resets this process's peak-RSS mark to its current RSS; returns that RSS, or None if refused.

    Linux keeps the peak in VmHWM; writing "5" to /proc/self/clear_refs (Linux >= 4.0) resets it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        return None
    return _status_mib("VmRSS")


def _peak_rss_mib() -> float:
    """The process's peak RSS (VmHWM) in MiB, since start or since `_reset_peak_rss_mib`."""
    return _status_mib("VmHWM")


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as file:
        return int(re.search(rf"^{field}:\s+(\d+) kB", file.read(), re.M).group(1)) / 1024


def _configurations() -> list[Configuration]:
    variable = tuple(tfmeta.data.VARIABLE_EPISODE_CONFIGS)
    return (
        [Configuration("omniglot", ways, shots) for ways, shots in CONFIGS]
        + [Configuration("omniglot", variable=name) for name in variable]
        + [Configuration("synthetic84", 5, 1)]
        + [Configuration("synthetic84", variable=name) for name in variable]
    )


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


def _print_table(times: dict[str, float], rows: dict[str, dict], processor: str) -> None:
    print("Omniglot episodes (tfmeta.data)")
    print(f"  processor: {processor}")
    print(f"  extract the archive (32,460 files):         {times['extract_s']:8.2f} s")
    print(f"  cache, cold (decode + resize 32,460 PNGs):  {times['cache_cold_s']:8.2f} s")
    print(f"  cache, warm (load the .npz files):          {times['cache_warm_s']:8.2f} s")
    print(f"  vinyals split sources from warm cache:      {times['vinyals_sources_warm_s']:8.2f} s")
    print(f"  {'configuration':<36}{'episodes/s':>12}{'peak RSS MiB':>14}{'rise MiB':>10}"
          f"{'ProtoNet tasks/s':>18}")
    for name, row in rows.items():
        rise = row.get("peak_rss_rise_mib", float("nan"))
        learner = row.get("protonet_tasks_per_s", float("nan"))
        print(f"  {name:<36}{row['episodes_per_s']:>12.1f}{row['peak_rss_mib']:>14.0f}"
              f"{rise:>10.0f}{learner:>18.2f}")
    print(f"  (fixed: {FLAGS.queries} queries, meta-batches of {FLAGS.meta_batch_size}; variable: "
          f"meta-batches of {FLAGS.variable_meta_batch_size}; {FLAGS.batches} timed each; every "
          "row in a process of its own, peak RSS while drawing, rise over the RSS before the "
          "pipeline was built)")


def main(argv):
    del argv
    data = _find_omniglot()
    cache_dir = (
        Path(FLAGS.cache_dir) if FLAGS.cache_dir else Path(tempfile.mkdtemp(prefix="tfmeta-bench-"))
    )
    try:
        times = {}
        start = time.perf_counter()
        if data.is_file():  # the .tar.gz: extract once, then read the ImageFolder
            data = tfmeta.data.extract_archive(data, cache_dir) / "omniglot"
        times["extract_s"] = time.perf_counter() - start
        start = time.perf_counter()
        tfmeta.data.omniglot_class_images(data, cache_dir=cache_dir)
        times["cache_cold_s"] = time.perf_counter() - start
        start = time.perf_counter()
        tfmeta.data.omniglot_class_images(data, cache_dir=cache_dir)
        times["cache_warm_s"] = time.perf_counter() - start
        start = time.perf_counter()
        tfmeta.data.omniglot(data, "vinyals", cache_dir=cache_dir)
        times["vinyals_sources_warm_s"] = time.perf_counter() - start
        settings = Settings(str(data), str(cache_dir), FLAGS.queries, FLAGS.meta_batch_size,
                            FLAGS.variable_meta_batch_size, FLAGS.batches, FLAGS.warmup,
                            FLAGS.learner_steps)
        rows = {config.name: measure_in_own_process(config, settings)
                for config in _configurations()}
    finally:
        if not FLAGS.cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)

    processor = machine.processor()
    results = {
        "benchmark": "omniglot_episodes",
        **{name: round(value, 3) for name, value in times.items()},
        "meta_batch_size": FLAGS.meta_batch_size,
        "queries": FLAGS.queries,
        "variable_meta_batch_size": FLAGS.variable_meta_batch_size,
        "timed_meta_batches": FLAGS.batches,
        "configurations": rows,
        "peak_memory": "VmHWM of a fresh process per configuration while drawing episodes; rise: "
                       "over its RSS before the pipeline was built",
        "processor": processor,
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
    }
    _print_table(times, rows, machine.describe())
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
