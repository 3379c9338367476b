"""The task sources of `tfmeta train` and `evaluate`, built from `--dataset` and its flags.

A source gives the meta-training stream, the held-out evaluation tasks and,
for `finetune`, labelled image batches of the training classes. Everything
is a pure function of `--seed`, so a resumed run sees the data an
uninterrupted one would have seen.

The training stream is cut into at most `MAX_BLOCKS` blocks of whole epochs,
each seeded by its index. A run resumed at epoch `e` starts at the block
holding `e` and skips the epochs of that block before `e`: at most 1/32 of
the run's episodes are made again, instead of every episode done so far
(Omniglot episodes cost about 20 ms per meta-batch of 32 to make, and each
block about 0.25 s to set up).
"""

from __future__ import annotations

import functools
import os
import re

import numpy as np
import tensorflow as tf

from tfmeta import data
from tfmeta.cli import options as options_lib
from tfmeta.cli.options import RunOptions
from tfmeta.data.pipeline_options import without_autotune_thread

MAX_BLOCKS = 32
EVAL_BATCH_SIZE = 25
PROBE_TASKS = 8  # tasks of the TensorBoard probe (`step_summaries`)
_TRAIN, _EVAL, _VALIDATION = 0, 1, 2  # streams of derived seeds


def derived_seed(seed: int, *path: int) -> int:
    """A seed for one stream of the run (`path`), independent of the others."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1, np.uint64)[0] >> 1)


class TaskSource:
    """What every source gives: a resumable training stream and held-out tasks."""

    classification: bool
    options: RunOptions

    def training_block(self, num_meta_batches: int, seed: int) -> tf.data.Dataset:
        """`num_meta_batches` training meta-batches drawn from `seed`."""
        raise NotImplementedError

    def eval_episodes(self, num_episodes: int | None = None) -> tf.data.Dataset:
        """The held-out tasks (default: `--eval_episodes`), in batches; the last may be smaller."""
        raise NotImplementedError

    def val_episodes(self) -> tf.data.Dataset | None:
        """The `--val_episodes` validation tasks, the same at every epoch; None without any."""
        raise NotImplementedError

    def probe_batch(self) -> dict[str, tf.Tensor]:
        """A few held-out tasks to watch adapting (validation tasks where there are some)."""
        episodes = self.val_episodes() or self.eval_episodes(PROBE_TASKS)
        batch = next(iter(episodes))
        return {key: value[:PROBE_TASKS] for key, value in batch.items()}

    def train_episodes(self, initial_epoch: int = 0) -> tf.data.Dataset:
        """The training meta-batches from epoch `initial_epoch` to the last epoch of the run.

        A finished run (`initial_epoch` past the last epoch) gets the last
        epoch: `fit` reads one element to build even when it trains no epoch.
        """
        o = self.options
        epochs = o.iterations // o.steps_per_epoch
        per_block = -(-epochs // MAX_BLOCKS)  # epochs per block
        initial_epoch = min(initial_epoch, epochs - 1)
        first = initial_epoch // per_block
        blocks = [
            self.training_block(
                (min(epochs, (block + 1) * per_block) - block * per_block) * o.steps_per_epoch,
                derived_seed(o.seed, _TRAIN, block),
            )
            for block in range(first, -(-epochs // per_block))
        ]
        stream = functools.reduce(tf.data.Dataset.concatenate, blocks)
        return stream.skip((initial_epoch - first * per_block) * o.steps_per_epoch)


class RegressionSource(TaskSource):
    """A generated 1-D regression family: the sinusoids of Finn et al. (2017), or the
    Gaussian-process curves of Garnelo et al. (2018) (`--dataset=gaussian_process`)."""

    classification = False
    input_shape = (1,)

    def __init__(self, options: RunOptions):
        self.options = options
        self.name = options.dataset
        if options.dataset == options_lib.GAUSSIAN_PROCESS:
            self.tasks = data.GaussianProcessTasks()
        else:
            self.tasks = data.SinusoidTasks()

    def training_block(self, num_meta_batches: int, seed: int) -> tf.data.Dataset:
        o = self.options
        return self.tasks.episodes(
            o.shots,
            o.queries,
            o.meta_batch_size,
            num_episodes=num_meta_batches * o.meta_batch_size,
            seed=seed,
        )

    def eval_episodes(self, num_episodes: int | None = None) -> tf.data.Dataset:
        return self._held_out(num_episodes or self.options.eval_episodes, _EVAL)

    def val_episodes(self) -> tf.data.Dataset | None:
        """Fresh tasks of the family, from a seed stream of their own."""
        o = self.options
        return self._held_out(o.val_episodes, _VALIDATION) if o.val_episodes else None

    def _held_out(self, num_episodes: int, stream: int) -> tf.data.Dataset:
        o = self.options
        episodes = self.tasks.episodes(
            o.evaluation_shots,
            o.evaluation_queries,
            meta_batch_size=None,
            num_episodes=num_episodes,
            seed=derived_seed(o.seed, stream),
        )
        return episodes.batch(EVAL_BATCH_SIZE)


class ImageSource(TaskSource):
    """N-way K-shot episodes of image classes: meta-training and held-out classes."""

    classification = True

    def __init__(
        self,
        options: RunOptions,
        train: data.FewShotEpisodes,
        test: data.FewShotEpisodes,
        validation: data.FewShotEpisodes | None = None,
    ):
        self.options = options
        self.train = train
        self.test = test
        self.validation = validation if options.val_episodes else None
        self.name = options.dataset
        self.input_shape = train.image_shape
        _check_split(train, options.ways, options.shots, options.queries, "")
        for split in (test, self.validation):
            if split is not None:
                _check_split(
                    split,
                    options.evaluation_ways,
                    options.evaluation_shots,
                    options.evaluation_queries,
                    "eval_",
                )

    def training_block(self, num_meta_batches: int, seed: int) -> tf.data.Dataset:
        o = self.options
        if o.variable_episodes is not None:
            return data.variable_episodes(
                self.train,
                data.VARIABLE_EPISODE_CONFIGS[o.variable_episodes],
                meta_batch_size=o.meta_batch_size,
                num_episodes=num_meta_batches * o.meta_batch_size,
                seed=seed,
            )
        return self.train.episodes(
            o.ways,
            o.shots,
            o.queries,
            meta_batch_size=o.meta_batch_size,
            num_episodes=num_meta_batches * o.meta_batch_size,
            seed=seed,
        )

    def eval_episodes(self, num_episodes: int | None = None) -> tf.data.Dataset:
        return self._held_out(self.test, num_episodes or self.options.eval_episodes, _EVAL)

    def val_episodes(self) -> tf.data.Dataset | None:
        """Episodes of the validation classes (evaluation ways, shots and queries), if any."""
        if self.validation is None:
            return None
        return self._held_out(self.validation, self.options.val_episodes, _VALIDATION)

    def _held_out(
        self, split: data.FewShotEpisodes, num_episodes: int, stream: int
    ) -> tf.data.Dataset:
        o = self.options
        episodes = split.episodes(
            o.evaluation_ways,
            o.evaluation_shots,
            o.evaluation_queries,
            num_episodes=num_episodes,
            seed=derived_seed(o.seed, stream),
        )
        return episodes.batch(EVAL_BATCH_SIZE)

    @property
    def num_train_classes(self) -> int:
        return self.train.num_classes

    def train_images(self, start: int = 0) -> tf.data.Dataset:
        """Infinite `(images, labels)` batches over all training classes, for pretraining.

        Batch `i` (from `start` on) draws `--batch_size` images uniformly
        (with their rotation for rotated classes), a pure function of the
        seed and `i`.
        """
        return labelled_batches(
            self.train.class_images,
            self.options.batch_size,
            derived_seed(self.options.seed, _TRAIN),
            start,
        )


class MixedImageSource(TaskSource):
    """Several benchmarks (`--dataset=cub,fc100`): training episodes of varying ways, each
    from the training classes of one benchmark drawn uniformly, and held-out episodes of each
    benchmark's own classes, tagged with its index (`"source"`) so that the evaluation
    reports each one."""

    classification = True

    def __init__(self, options: RunOptions, parts: dict[str, ImageSource]):
        self.options = options
        self.parts = parts
        self.name = options.dataset
        self.input_shape = next(iter(parts.values())).input_shape

    @property
    def source_names(self) -> list[str]:
        """The benchmarks, in the order of their `"source"` index."""
        return list(self.parts)

    def training_block(self, num_meta_batches: int, seed: int) -> tf.data.Dataset:
        o = self.options
        return data.variable_episodes(
            [part.train for part in self.parts.values()],
            data.VARIABLE_EPISODE_CONFIGS[o.variable_episodes],
            meta_batch_size=o.meta_batch_size,
            num_episodes=num_meta_batches * o.meta_batch_size,
            seed=seed,
        )

    def eval_episodes(self, num_episodes: int | None = None) -> tf.data.Dataset:
        """`num_episodes` (default `--eval_episodes`) held-out tasks of every benchmark in turn."""
        return _tagged([part.eval_episodes(num_episodes) for part in self.parts.values()])

    def val_episodes(self) -> tf.data.Dataset | None:
        episodes = [part.val_episodes() for part in self.parts.values()]
        return None if None in episodes else _tagged(episodes)


def _tagged(batches: list[tf.data.Dataset]) -> tf.data.Dataset:
    """The batches of each dataset in turn, each task carrying its dataset's index as `source`."""

    def tag(index: int):
        return lambda batch: {
            **batch, "source": tf.fill(tf.shape(batch["query_y"])[:1], tf.constant(index, tf.int32))
        }

    tagged = [episodes.map(tag(index)) for index, episodes in enumerate(batches)]
    return functools.reduce(tf.data.Dataset.concatenate, tagged)


def labelled_batches(
    images: data.ClassImages, batch_size: int, seed: int, start: int = 0
) -> tf.data.Dataset:
    """Infinite `(float32 images in [0, 1], int32 class ids)` batches drawn from `images`.

    Batch `i` is a pure function of `seed` and `i`; the stream starts at
    batch `start`. Class ids follow `images.class_names` (rotated classes
    included).
    """
    rotations = len(images.rotations)
    with tf.device("/CPU:0"):
        pixels = tf.constant(images.images)
        base_class = tf.constant(
            np.repeat(np.arange(images.num_base_classes), images.counts), tf.int32
        )
        turns = tf.constant(images.rotations, tf.int32)
    seed_t = tf.constant(seed, tf.int64)

    def batch(index: tf.Tensor):
        row_seed, turn_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.stack([seed_t, index]), num=2)
        )
        rows = tf.random.stateless_uniform(
            [batch_size], row_seed, 0, images.num_examples, dtype=tf.int32
        )
        rotation = tf.random.stateless_uniform(
            [batch_size], turn_seed, 0, rotations, dtype=tf.int32
        )
        x = tf.gather(pixels, rows)
        if images.rotations != (0,):
            turned = tf.stack([tf.image.rot90(x, k) for k in range(4)])  # [4, B, H, W, C]
            which = tf.stack([tf.gather(turns, rotation), tf.range(batch_size)], axis=1)
            x = tf.gather_nd(turned, which)
        labels = tf.gather(base_class, rows) * rotations + rotation
        return tf.cast(x, tf.float32) / 255.0, labels

    batches = tf.data.Dataset.counter(start).map(batch, deterministic=True)
    return without_autotune_thread(batches.prefetch(tf.data.AUTOTUNE))


def _check_split(
    source: data.FewShotEpisodes, ways: int, shots: int, queries: int, prefix: str
) -> None:
    """Raises a ValueError naming the `--<prefix>ways/shots/queries` flags to change, if any."""
    if ways > source.num_classes:
        raise ValueError(
            f"--{prefix}ways={ways} is larger than the {source.num_classes} classes of "
            f"{source.name}; lower --{prefix}ways"
        )
    counts = source.class_images.counts
    if shots + queries > counts.min():
        smallest = source.class_images.base_class_names[int(np.argmin(counts))]
        raise ValueError(
            f"episodes need --{prefix}shots + --{prefix}queries = {shots} + {queries} images per "
            f"class, but class {smallest!r} of {source.name} holds {counts.min()}; lower "
            f"--{prefix}shots or --{prefix}queries"
        )


def image_preprocessing(options: RunOptions) -> data.ImagePreprocessing | None:
    """How `--dataset`'s images become model inputs (None for the regression families)."""
    kind = options_lib.dataset_kind(options.dataset)
    if kind in options_lib.REGRESSION_DATASETS:
        return None
    if kind == options_lib.OMNIGLOT:
        return data.omniglot_preprocessing(options.image_size)
    return data.ImagePreprocessing(options.image_size, channels=options.channels)


# --dataset=<benchmark>: the reader of its files (see tfmeta.data).
BENCHMARK_READERS = {
    "mini_imagenet": data.mini_imagenet,
    "tiered_imagenet": data.tiered_imagenet,
    "cifar_fs": data.cifar_fs,
    "fc100": data.fc100,
    "cub": data.cub,
}


def build(options: RunOptions) -> RegressionSource | ImageSource | MixedImageSource:
    """The task source `--dataset` names.

    Raises:
        ValueError, FileNotFoundError: for data that cannot make the episodes,
            with the flag to change.
    """
    kind = options_lib.dataset_kind(options.dataset)
    if kind in options_lib.REGRESSION_DATASETS:
        return RegressionSource(options)
    if kind == options_lib.OMNIGLOT:
        sources = _read_images(
            lambda: data.omniglot(
                options.data_dir, options.omniglot_protocol, image_size=options.image_size
            ),
            options.data_dir or "TFDS's omniglot builder",
        )
        return ImageSource(options, sources["train"], sources["test"], sources.get("validation"))
    if kind in options_lib.BENCHMARKS:
        return _benchmark(options, kind, options.data_dir)
    if kind == options_lib.MIXED_BENCHMARKS:
        return MixedImageSource(options, {
            name: _benchmark(options, name, folder)
            for name, folder in options_lib.benchmark_data_dirs(options).items()
        })
    preprocessing = image_preprocessing(options)
    splits = [options.train_split, options.eval_split]
    if options.val_split is not None and options.val_episodes:
        splits.append(options.val_split)
    if kind == options_lib.IMAGE_FOLDER:
        root = os.path.expanduser(options.dataset)
        sources = [
            _read_images(
                lambda split=split: data.FewShotEpisodes(
                    data.image_folder_class_images(root, split, preprocessing=preprocessing),
                    name=os.path.join(root, split),
                ),
                os.path.join(root, split),
            )
            for split in splits
        ]
    else:
        path_note = (
            f" (and no directory {options.dataset} exists)" if "/" in options.dataset else ""
        )
        sources = [
            _read_images(
                lambda split=split: data.FewShotEpisodes.from_tfds(
                    options.dataset, split, preprocessing=preprocessing, data_dir=options.data_dir
                ),
                f"TFDS {options.dataset}[{split}]{path_note}",
            )
            for split in splits
        ]
    return ImageSource(options, *sources)


def _benchmark(options: RunOptions, name: str, data_dir: str) -> ImageSource:
    """One benchmark's published split, read from the files in `data_dir`."""
    read = BENCHMARK_READERS[name]
    sources = _read_images(
        lambda: read(os.path.expanduser(data_dir), image_size=options.image_size), data_dir
    )
    return ImageSource(options, sources["train"], sources["test"], sources["validation"])


def _read_images(read, where: str):
    """`read()`, with the data's problems reported as ValueErrors that name `where`."""
    try:
        return read()
    except tf.errors.InvalidArgumentError as error:
        match = re.search(r"([^:\n]+)\n\s*\[\[", error.message)
        detail = (match[1] if match else error.message.splitlines()[0]).strip()
        culprit = _unreadable_file(where) if os.path.isdir(where) else None
        what = f"the image {culprit}" if culprit else f"an image under {where}"
        raise ValueError(
            f"could not decode {what} ({detail}); remove or replace the unreadable file"
        ) from error
    except FileNotFoundError:
        raise
    except OSError as error:  # no network (requests' errors are OSErrors too)
        raise ValueError(
            f"could not read {where} ({str(error).splitlines()[0].split('. Prepare it')[0]}); "
            "check the network, pass --data_dir holding a prepared copy, or pass the images as "
            "--dataset=DIR, an ImageFolder <DIR>/<split>/<class>/<image>"
        ) from error
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error


_IMAGE_SIGNATURES = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"BM",
    b"\xff\x0a",
    b"\x00\x00\x00\x0cJXL",
)


def _unreadable_file(directory: str) -> str | None:
    """The first file under `directory` that does not start like a JPEG/PNG/GIF/BMP/WebP/JPEG XL."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                head = handle.read(12)
            webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
            if not (webp or head.startswith(_IMAGE_SIGNATURES)):
                return path
    return None
