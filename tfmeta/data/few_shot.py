"""N-way K-shot classification episodes, as a deterministic tf.data pipeline."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta.argument_validation import check_choice
from tfmeta.data.class_images import ClassImages
from tfmeta.data.episode import QUERY_X, QUERY_Y, SUPPORT_X, SUPPORT_Y, episode_spec
from tfmeta.data.pipeline_options import without_autotune_thread
from tfmeta.data.preprocessing import to_model_inputs

SHORT_CLASS_POLICIES = ("raise", "skip")


class FewShotEpisodes:
    """Cuts N-way K-shot Q-query episodes out of images held in memory.

    Each episode draws `ways` distinct classes without replacement, then
    `shots + queries` distinct images of each class (support and query never
    share an image). The chosen classes get the labels `0..ways-1` in random
    order. Support and query tensors are grouped by label:
    `support_y = [0]*shots + [1]*shots + ...`, likewise for the query.

    Episode `i` of seed `s` is a pure function of `(s, i)` (stateless random
    ops keyed by `[s, i]`), so the same seed gives the same episodes in any
    process, whatever `tf.random.set_seed` says, and the parallel map stays
    deterministic. Pixels are float32 in `[0, 1]` (stored uint8 / 255).

    Args:
        class_images: the classes to draw from (one split).
        name: a label for messages and `repr`, e.g. `"omniglot/vinyals/train"`.

    Example:

    >>> data = tfmeta.data.ClassImages(np.zeros([40, 28, 28, 1], np.uint8), [20, 20], ["a", "b"])
    >>> source = tfmeta.data.FewShotEpisodes(data.with_rotations())
    >>> ds = source.episodes(ways=5, shots=1, queries=15, meta_batch_size=32, seed=0)
    >>> ds.element_spec["support_x"].shape
    TensorShape([32, 5, 28, 28, 1])
    """

    def __init__(self, class_images: ClassImages, name: str | None = None):
        if not isinstance(class_images, ClassImages):
            raise ValueError(
                f"Expected a tfmeta.data.ClassImages. Received: {type(class_images).__name__}"
            )
        self._data = class_images
        self._name = name
        self._tensors: dict[str, tf.Tensor] | None = None

    # ---- Constructors from data sources ----------------------------------------------------

    @classmethod
    def from_arrays(
        cls, images: np.ndarray, labels: np.ndarray, name: str | None = None, **kwargs: Any
    ) -> "FewShotEpisodes":
        """Episodes over in-memory images and labels; see `ClassImages.from_arrays`.

        Example:

        >>> images = np.random.default_rng(0).integers(0, 256, [60, 8, 8, 1], np.uint8)
        >>> source = tfmeta.data.FewShotEpisodes.from_arrays(images, np.arange(60) % 6)
        >>> batch = next(iter(source.episodes(ways=3, shots=1, queries=2, meta_batch_size=4)))
        >>> batch["support_x"].shape
        TensorShape([4, 3, 8, 8, 1])
        """
        return cls(ClassImages.from_arrays(images, labels, **kwargs), name=name)

    @classmethod
    def from_dataset(
        cls, dataset: tf.data.Dataset, name: str | None = None, **kwargs: Any
    ) -> "FewShotEpisodes":
        """Episodes over a `tf.data.Dataset` of `(image, label)`; see `ClassImages.from_dataset`."""
        return cls(ClassImages.from_dataset(dataset, **kwargs), name=name)

    @classmethod
    def from_tfds(cls, name: Any, split: str, **kwargs: Any) -> "FewShotEpisodes":
        """Episodes over a TFDS dataset split; see `tfmeta.data.tfds_class_images`."""
        from tfmeta.data.tfds_images import tfds_class_images

        label = name if isinstance(name, str) else getattr(name, "name", None)
        return cls(tfds_class_images(name, split, **kwargs), name=f"{label}/{split}")

    @classmethod
    def from_image_folder(
        cls, root_dir: str | os.PathLike, split: str, **kwargs: Any
    ) -> "FewShotEpisodes":
        """Episodes over a `tfds.ImageFolder` split; see `tfmeta.data.image_folder_class_images`."""
        from tfmeta.data.tfds_images import image_folder_class_images

        return cls(image_folder_class_images(root_dir, split, **kwargs), name=split)

    # ---- What it yields ---------------------------------------------------------------------

    @property
    def class_images(self) -> ClassImages:
        return self._data

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def num_classes(self) -> int:
        return self._data.num_classes

    @property
    def class_names(self) -> list[str]:
        return self._data.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._data.image_shape

    def __repr__(self) -> str:
        return f"FewShotEpisodes(name={self._name!r}, {self._data!r})"

    def element_spec(
        self, ways: int, shots: int, queries: int, meta_batch_size: int | None = None
    ) -> dict[str, tf.TensorSpec]:
        """The element spec of `episodes(ways, shots, queries, meta_batch_size)`, declared upfront.

        Returns:
            A dict of `tf.TensorSpec`: `support_x` `[ways*shots, H, W, C]`
            float32, `support_y` `[ways*shots]` int32, `query_x`
            `[ways*queries, H, W, C]`, `query_y` `[ways*queries]`, each with a
            leading `meta_batch_size` axis when one is given.
        """
        _check_count("ways", ways)
        _check_count("shots", shots)
        _check_count("queries", queries)
        if meta_batch_size is not None:
            _check_count("meta_batch_size", meta_batch_size)
        spec = episode_spec(self.image_shape, (), ways * shots, ways * queries)
        if meta_batch_size is None:
            return spec
        return {key: tf.TensorSpec((meta_batch_size, *s.shape), s.dtype) for key, s in spec.items()}

    # ---- Episodes -----------------------------------------------------------------------

    def episodes(
        self,
        ways: int,
        shots: int,
        queries: int,
        meta_batch_size: int | None = None,
        num_episodes: int | None = None,
        seed: int | None = None,
        on_short_class: str = "raise",
        prefetch: bool = True,
    ) -> tf.data.Dataset:
        """A `tf.data.Dataset` of episodes, or of meta-batches of episodes.

        Args:
            ways: classes per episode (N).
            shots: support images per class (K), >= 1.
            queries: query images per class (Q), >= 1.
            meta_batch_size: if given, episodes are batched into meta-batches
                of this many tasks (`drop_remainder=True`, so shapes are static).
            num_episodes: number of episodes (tasks, not meta-batches); `None`
                repeats forever. Must be a multiple of `meta_batch_size`.
            seed: episode `i` depends only on `(seed, i)`; iterating the
                dataset again yields the same episodes. `None` draws a fresh
                seed from the OS for this call.
            on_short_class: what to do with classes holding fewer than
                `shots + queries` images: `"raise"` (default) raises a
                `ValueError` naming them; `"skip"` leaves them out of sampling.
            prefetch: add `prefetch(tf.data.AUTOTUNE)` at the end.

        Returns:
            A dataset whose `element_spec` equals
            `self.element_spec(ways, shots, queries, meta_batch_size)`, with
            tf.data's autotuning off (`tfmeta/data/pipeline_options.py`).

        Raises:
            ValueError: for a non-positive ways, shots or queries, more ways
                than classes, short classes under `"raise"`, or a
                `num_episodes` that does not fill whole meta-batches.
        """
        spec = self.element_spec(ways, shots, queries, meta_batch_size)
        if num_episodes is not None:
            _check_count("num_episodes", num_episodes)
            if meta_batch_size is not None and num_episodes % meta_batch_size:
                raise ValueError(
                    "Expected num_episodes to be a multiple of meta_batch_size (meta-batches keep "
                    f"whole tasks only). Received: num_episodes={num_episodes}, "
                    f"meta_batch_size={meta_batch_size}"
                )
        check_choice("on_short_class", on_short_class, SHORT_CLASS_POLICIES)
        eligible = self._eligible_classes(ways, shots + queries, on_short_class)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        make_episode = self._episode_fn(eligible, ways, shots, queries, int(seed))

        episodes = tf.data.Dataset.counter(dtype=tf.int64)
        if num_episodes is not None:
            episodes = episodes.take(num_episodes)
        episodes = episodes.map(
            make_episode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        if meta_batch_size is not None:
            episodes = episodes.batch(meta_batch_size, drop_remainder=True)
        if prefetch:
            episodes = episodes.prefetch(tf.data.AUTOTUNE)
        assert episodes.element_spec == spec, (episodes.element_spec, spec)
        return without_autotune_thread(episodes)

    def _eligible_classes(self, ways: int, needed: int, on_short_class: str) -> np.ndarray:
        """Ids of the classes holding at least `needed` images, after the short-class policy."""
        data = self._data
        rotations = len(data.rotations)
        class_counts = np.repeat(data.counts, rotations)
        short = np.flatnonzero(class_counts < needed)
        where = f" in {self._name!r}" if self._name else ""
        if len(short) and on_short_class == "raise":
            example = data.class_names[short[0]]
            raise ValueError(
                f"Expected every class{where} to hold at least shots + queries = {needed} images. "
                f"Received: {len(short)} of {data.num_classes} classes hold fewer "
                f"(e.g. {example!r} with {class_counts[short[0]]}). "
                "Pass on_short_class='skip' to leave them out."
            )
        eligible = np.flatnonzero(class_counts >= needed)
        if ways > len(eligible):
            detail = (
                f" with at least {needed} images ({len(short)} classes hold fewer)"
                if len(short)
                else ""
            )
            raise ValueError(
                f"Expected ways <= {len(eligible)} classes{where}{detail}. Received: ways={ways}"
            )
        return eligible

    def device_tensors(self) -> dict[str, tf.Tensor]:
        """The arrays as eager tensors, made once, so graphs capture them by reference.

        Returns:
            `images` (uint8, grouped by base class), `counts` (int32 per base
            class), `offsets` (int64 first row of each base class) and
            `rotations` (int32 quarter turns); episode samplers share them.
        """
        if self._tensors is None:
            data = self._data
            with tf.device("/CPU:0"):
                self._tensors = {
                    "images": tf.constant(data.images),
                    "counts": tf.constant(data.counts, tf.int32),
                    "offsets": tf.constant(data.offsets, tf.int64),
                    "rotations": tf.constant(data.rotations, tf.int32),
                }
        return self._tensors

    def _episode_fn(self, eligible: np.ndarray, ways: int, shots: int, queries: int, seed: int):
        tensors = self.device_tensors()
        images, counts, offsets, turns = (
            tensors[k] for k in ("images", "counts", "offsets", "rotations")
        )
        num_rotations = len(self._data.rotations)
        rotate = self._data.rotations != (0,)
        eligible_t = tf.constant(eligible, tf.int32)
        max_count = int(self._data.counts[np.unique(eligible // num_rotations)].max())
        per_class = shots + queries
        height, width, channels = self.image_shape
        seed_t = tf.constant(seed, tf.int64)
        maps = tf.constant(_rotation_maps(height)) if rotate else None

        def make_episode(index: tf.Tensor) -> dict[str, tf.Tensor]:
            class_seed, example_seed = tf.unstack(
                tf.random.experimental.stateless_split(tf.stack([seed_t, index]), num=2)
            )
            # `ways` distinct classes, in random order: their positions are the labels.
            scores = tf.random.stateless_uniform([len(eligible)], seed=class_seed)
            classes = tf.gather(eligible_t, tf.math.top_k(scores, k=ways).indices)
            base = classes // num_rotations
            # `shots + queries` distinct images of each class, in random order.
            class_counts = tf.gather(counts, base)
            scores = tf.random.stateless_uniform([ways, max_count], seed=example_seed)
            scores = tf.where(
                tf.range(max_count)[tf.newaxis] < class_counts[:, tf.newaxis], scores, -1.0
            )
            picks = tf.math.top_k(scores, k=per_class).indices
            rows = tf.gather(offsets, base)[:, tf.newaxis] + tf.cast(picks, tf.int64)
            x = tf.gather(images, rows)  # [ways, shots + queries, H, W, C] uint8
            if rotate:
                x = _rotate_per_class(x, tf.gather(turns, classes % num_rotations), maps)
            x = to_model_inputs(x)
            labels = tf.range(ways, dtype=tf.int32)
            return {
                SUPPORT_X: tf.reshape(x[:, :shots], [ways * shots, height, width, channels]),
                SUPPORT_Y: tf.repeat(labels, shots),
                QUERY_X: tf.reshape(x[:, shots:], [ways * queries, height, width, channels]),
                QUERY_Y: tf.repeat(labels, queries),
            }

        return make_episode


def _rotation_maps(size: int) -> np.ndarray:
    """`maps[k]`: for each pixel of a `size x size` image turned by `k` quarter turns
    (counter-clockwise, as `tf.image.rot90`), the flat index of its source pixel."""
    pixels = np.arange(size * size).reshape(size, size)
    return np.stack([np.rot90(pixels, k).reshape(-1) for k in range(4)]).astype(np.int32)


def _rotate_per_class(x: tf.Tensor, quarter_turns: tf.Tensor, maps: tf.Tensor) -> tf.Tensor:
    """Turns `x[i]` (`[M, H, W, C]`) by `quarter_turns[i]` quarter turns: one gather."""
    ways, per_class, height, width, channels = x.shape
    flat = tf.reshape(x, [ways, per_class, height * width, channels])
    turned = tf.gather(flat, tf.gather(maps, quarter_turns), axis=2, batch_dims=1)
    return tf.reshape(turned, [ways, per_class, height, width, channels])


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        hint = (
            ": every episode of a dataset has the same shape, so make one dataset per value "
            "(and combine them with tf.data.Dataset.sample_from_datasets, for a learner that "
            "takes any way count such as ProtoNet(ways=None))"
            if isinstance(value, (list, tuple, range, np.ndarray))
            else ""
        )
        raise ValueError(
            f"Expected {name} to be one integer >= 1. Received: {name}={value!r} of type "
            f"{type(value).__name__}{hint}"
        )
    if value < 1:
        raise ValueError(f"Expected {name} >= 1. Received: {name}={value!r}")
