"""Episodes of varying ways and shots, sampled as Meta-Dataset samples them, padded to one shape.

Triantafillou et al. (2020), section 3.2, for one episode of a source:

1. ways `N ~ U{min_ways .. min(max_ways, classes)}`, the classes drawn
   without replacement;
2. queries per class `q = min(max_query_per_class, min_c floor(|c| / 2))`
   (`|c|`: the images of class `c`), the same for every class;
3. a support budget `|S| = min(max_support_size, sum_c ceil(beta * min(
   max_support_per_class, |c| - q)))` with `beta ~ U(0, 1]`;
4. class-imbalanced shots: `R_c = exp(alpha_c)`, `alpha_c ~ U[log 0.5,
   log 2)`, and `k_c = min(floor(R_c * (|S| - N) / sum R) + 1, |c| - q)`,
   so every class has at least one support example and `sum k_c <= |S|`.

Every episode is padded to `max_support_size` support examples and
`max_ways * max_query_per_class` queries, with `support_mask` and
`query_mask` saying which are real (padding: zero images, label 0), so a
meta-batch has one static shape and a learner's step is traced once. The
episode also carries `ways` (N) and `source` (the index of the source it
came from, for per-source evaluation). Episode `i` of seed `s` is a pure
function of `(s, i)`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfmeta.argument_validation import check_integer
from tfmeta.data.episode import (
    QUERY_MASK,
    QUERY_X,
    QUERY_Y,
    SUPPORT_MASK,
    SUPPORT_X,
    SUPPORT_Y,
)
from tfmeta.data.few_shot import FewShotEpisodes, _rotate_per_class, _rotation_maps
from tfmeta.data.pipeline_options import without_autotune_thread
from tfmeta.data.preprocessing import to_model_inputs

WAYS = "ways"
SOURCE = "source"


@dataclasses.dataclass(frozen=True)
class VariableEpisodeConfig:
    """The bounds of Meta-Dataset's sampler (defaults: the paper's).

    Args:
        min_ways: fewest classes per episode (>= 2).
        max_ways: most classes per episode (capped by the source's classes).
        max_support_size: most support examples per episode; the padded size.
        max_support_per_class: the per-class cap inside the budget (100).
        max_query_per_class: most queries per class (10).
    """

    min_ways: int = 5
    max_ways: int = 50
    max_support_size: int = 500
    max_support_per_class: int = 100
    max_query_per_class: int = 10

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_integer(field.name, getattr(self, field.name))
        if not 2 <= self.min_ways <= self.max_ways:
            raise ValueError(
                "Expected 2 <= min_ways <= max_ways. Received: "
                f"min_ways={self.min_ways}, max_ways={self.max_ways}"
            )
        if self.max_support_size < self.max_ways:
            raise ValueError(
                "Expected max_support_size >= max_ways (every class gets a support example). "
                f"Received: max_support_size={self.max_support_size}, max_ways={self.max_ways}"
            )

    @property
    def max_queries(self) -> int:
        """The padded number of queries of an episode."""
        return self.max_ways * self.max_query_per_class


# Named configurations, for the command line (`--episodes=variable:<name>`).
VARIABLE_EPISODE_CONFIGS = {
    "meta_dataset": VariableEpisodeConfig(),
    # Smaller episodes for Conv-4 on one machine: 5-20 ways, at most 100 support examples.
    "small": VariableEpisodeConfig(
        min_ways=5, max_ways=20, max_support_size=100, max_support_per_class=20,
        max_query_per_class=5,
    ),
}


def variable_episodes(
    sources: FewShotEpisodes | Sequence[FewShotEpisodes],
    config: VariableEpisodeConfig = VariableEpisodeConfig(),
    *,
    weights: Sequence[float] | None = None,
    meta_batch_size: int | None = None,
    num_episodes: int | None = None,
    seed: int | None = None,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """Meta-Dataset episodes from one source, or from several mixed.

    Args:
        sources: one `FewShotEpisodes` or several with the same image shape
            (e.g. `mini_imagenet(...)["train"]` and `cub(...)["train"]` at 84x84).
        config: the sampler's bounds (`VARIABLE_EPISODE_CONFIGS` has named ones).
        weights: the probability of drawing each source for an episode;
            default uniform over sources.
        meta_batch_size: batch this many episodes (all padded to one shape).
        num_episodes: number of episodes; `None` repeats forever.
        seed: episode `i` depends only on `(seed, i)`; `None` draws one.
        prefetch: add `prefetch(tf.data.AUTOTUNE)` at the end.

    Returns:
        A dataset of dicts: `support_x` `[max_support_size, H, W, C]`,
        `support_y`, `support_mask` (bool), `query_x`
        `[max_ways * max_query_per_class, H, W, C]`, `query_y`, `query_mask`,
        `ways` (int32) and `source` (int32), with a leading task axis when
        `meta_batch_size` is given; tf.data's autotuning is off
        (`tfmeta/data/pipeline_options.py`).

    Raises:
        ValueError: for sources of different image shapes, weights that do
            not match the sources, or a source with fewer than `min_ways`
            classes of at least two images.

    Example:

    >>> sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    >>> train = tfmeta.data.variable_episodes(sources["train"], meta_batch_size=1, seed=0)
    """
    sources = [sources] if isinstance(sources, FewShotEpisodes) else list(sources)
    if not sources or not all(isinstance(s, FewShotEpisodes) for s in sources):
        raise ValueError(
            "Expected one FewShotEpisodes or a non-empty sequence of them. Received: "
            f"{[type(s).__name__ for s in sources]}"
        )
    shapes = {s.image_shape for s in sources}
    if len(shapes) > 1:
        raise ValueError(
            f"Expected sources with one image shape (episodes are batched). Received: "
            f"{[(s.name, s.image_shape) for s in sources]}; read them at one image_size"
        )
    probabilities = _probabilities(weights, len(sources))
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    makers = [_episode_fn(source, index, config, seed) for index, source in enumerate(sources)]
    episodes = tf.data.Dataset.counter(dtype=tf.int64).map(
        makers[0] if len(makers) == 1 else _mixed_episode_fn(makers, probabilities, seed),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if num_episodes is not None:
        episodes = episodes.take(num_episodes)
    if meta_batch_size is not None:
        episodes = episodes.batch(meta_batch_size, drop_remainder=True)
    return without_autotune_thread(episodes.prefetch(tf.data.AUTOTUNE) if prefetch else episodes)


def _probabilities(weights, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count or not all(math.isfinite(w) and w >= 0 for w in weights) or not sum(
        weights
    ):
        raise ValueError(
            f"Expected one non-negative weight per source ({count}), not all zero. "
            f"Received: weights={weights}"
        )
    return [w / sum(weights) for w in weights]


def _mixed_episode_fn(makers, probabilities: list[float], seed: int):
    """Episode `i` from the source drawn for `(seed, i)`, made by that source's maker.

    One map with a `tf.switch_case` rather than `Dataset.choose_from_datasets`:
    in TF 2.21 a dataset built with `choose_from_datasets` (or
    `sample_from_datasets`) cannot be concatenated with any other ("Incompatible
    shapes at component 0" when iterated), and training streams are concatenated
    blocks (`tfmeta train`, resumption).
    """
    logits = tf.math.log(tf.constant([probabilities], tf.float32))
    seed_t = tf.constant(seed, tf.int64)

    def make_episode(index: tf.Tensor) -> dict[str, tf.Tensor]:
        choice = tf.random.stateless_categorical(logits, 1, tf.stack([seed_t, -1 - index]))[0, 0]
        return tf.switch_case(
            tf.cast(choice, tf.int32), [lambda make=make: make(index) for make in makers]
        )

    return make_episode


def _episode_fn(source: FewShotEpisodes, source_index: int, config: VariableEpisodeConfig, seed):
    data = source.class_images
    num_rotations = len(data.rotations)
    class_counts = np.repeat(data.counts, num_rotations)
    eligible = np.flatnonzero(class_counts >= 2)
    if len(eligible) < config.min_ways:
        raise ValueError(
            f"Expected at least min_ways={config.min_ways} classes of two or more images in "
            f"{source.name!r}. Received: {len(eligible)} of {data.num_classes}"
        )
    max_ways = min(config.max_ways, len(eligible))
    tensors = source.device_tensors()
    images, offsets, turns = tensors["images"], tensors["offsets"], tensors["rotations"]
    counts_t = tf.constant(class_counts[eligible], tf.int32)
    eligible_t = tf.constant(eligible, tf.int32)
    max_count = int(class_counts[eligible].max())
    rotate = data.rotations != (0,)
    maps = tf.constant(_rotation_maps(data.image_shape[0])) if rotate else None
    support_size, query_size = config.max_support_size, config.max_queries
    seed_t = tf.constant(seed, tf.int64)
    log_half, log_two = math.log(0.5), math.log(2.0)

    def make_episode(index: tf.Tensor) -> dict[str, tf.Tensor]:
        key = tf.random.experimental.stateless_fold_in(tf.stack([seed_t, index]), source_index)
        seeds = tf.unstack(tf.random.experimental.stateless_split(key, num=5))
        ways = tf.random.stateless_uniform(
            [], seeds[0], config.min_ways, max_ways + 1, dtype=tf.int32
        )
        scores = tf.random.stateless_uniform([len(eligible)], seeds[1])
        picked = tf.math.top_k(scores, k=max_ways).indices  # [max_ways], random order
        is_class = tf.range(max_ways) < ways
        counts = tf.where(is_class, tf.gather(counts_t, picked), 0)
        # Queries per class: the same for every class.
        half = tf.reduce_min(tf.where(is_class, counts // 2, tf.int32.max))
        queries = tf.minimum(config.max_query_per_class, half)
        available = tf.where(is_class, counts - queries, 0)
        # The support budget, then class-imbalanced shots under it.
        beta = 1.0 - tf.random.stateless_uniform([], seeds[2])  # (0, 1]
        capped = tf.cast(tf.minimum(available, config.max_support_per_class), tf.float32)
        budget = tf.minimum(
            config.max_support_size, tf.reduce_sum(tf.cast(tf.math.ceil(beta * capped), tf.int32))
        )
        ratios = tf.where(
            is_class,
            tf.exp(tf.random.stateless_uniform([max_ways], seeds[3], log_half, log_two)),
            0.0,
        )
        share = ratios * tf.cast(budget - ways, tf.float32) / tf.reduce_sum(ratios)
        shots = tf.where(
            is_class, tf.minimum(tf.cast(tf.floor(share), tf.int32) + 1, available), 0
        )
        # A random order of each class's images: queries first, then support examples.
        order = tf.random.stateless_uniform([max_ways, max_count], seeds[4])
        order = tf.where(tf.range(max_count)[tf.newaxis] < counts[:, tf.newaxis], order, -1.0)
        order = tf.math.top_k(order, k=max_count).indices
        query_rows = tf.ragged.range(tf.zeros_like(counts), tf.where(is_class, queries, 0))
        support_rows = tf.ragged.range(tf.fill([max_ways], queries), queries + shots)
        classes = tf.gather(eligible_t, picked)
        support = _gather_padded(support_rows, order, support_size)
        query = _gather_padded(query_rows, order, query_size)

        def pixels(rows_labels_mask):
            positions, labels, mask = rows_labels_mask
            base = tf.gather(classes, labels) // num_rotations
            rows = tf.gather(offsets, base) + tf.cast(positions, tf.int64)
            x = tf.gather(images, rows)
            if rotate:
                quarter = tf.gather(turns, tf.gather(classes, labels) % num_rotations)
                x = _rotate_per_class(x[:, tf.newaxis], quarter, maps)[:, 0]
            x = to_model_inputs(x)
            return x * tf.cast(mask, x.dtype)[:, tf.newaxis, tf.newaxis, tf.newaxis]

        return {
            SUPPORT_X: pixels(support),
            SUPPORT_Y: support[1],
            SUPPORT_MASK: support[2],
            QUERY_X: pixels(query),
            QUERY_Y: query[1],
            QUERY_MASK: query[2],
            WAYS: ways,
            SOURCE: tf.constant(source_index, tf.int32),
        }

    return make_episode


def _gather_padded(rows: tf.RaggedTensor, order: tf.Tensor, size: int):
    """Positions in each class (`order[label, row]`), labels and a mask, padded to `size`."""
    labels = tf.cast(rows.value_rowids(), tf.int32)
    positions = tf.gather_nd(order, tf.stack([labels, tf.cast(rows.flat_values, tf.int32)], 1))
    count = tf.shape(labels)[0]
    padding = [[0, size - count]]
    mask = tf.pad(tf.ones([count], tf.bool), padding)
    return (
        tf.ensure_shape(tf.pad(positions, padding), [size]),
        tf.ensure_shape(tf.pad(labels, padding), [size]),
        tf.ensure_shape(mask, [size]),
    )
