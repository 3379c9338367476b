"""Images grouped by class and held in memory: what few-shot episodes are cut from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfmeta.data import pixels
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.data.temporary_files import temporary_path

_FORMAT_VERSION = 1
QUARTER_TURNS = (0, 1, 2, 3)


class ClassImages:
    """Preprocessed uint8 images of every class, in one array.

    The images of class `i` are the rows `offsets[i] : offsets[i] + counts[i]`
    of `images` (classes may hold different numbers of images). Optional
    rotations make new classes: with `rotations=(0, 1, 2, 3)` every base
    class `b` yields the classes `4 * b + r`, its images turned by `r * 90`
    degrees counter-clockwise (`tf.image.rot90`). Rotations are applied
    when episodes are cut, so they cost no memory.

    Everything is held in memory, which suits few-shot benchmarks (Omniglot
    at 28x28: 25 MB; mini-ImageNet at 84x84x3: 1.3 GB). Data too large for
    that should be streamed class by class instead (for example one
    `tf.data.Dataset` per class combined with
    `tf.data.Dataset.choose_from_datasets`); this class does not do that.

    Args:
        images: uint8 array `[num_examples, height, width, channels]`,
            grouped by class in the order of `class_names`.
        counts: number of images of each base class (each >= 1).
        class_names: unique name of each base class.
        rotations: quarter turns that make classes out of each base class;
            `(0,)` (the default) keeps the base classes only.

    Example:

    >>> images = np.zeros([6, 28, 28, 1], np.uint8)
    >>> data = tfmeta.data.ClassImages(images, counts=[2, 4], class_names=["a", "b"])
    >>> data.with_rotations().num_classes
    8
    """

    def __init__(
        self,
        images: np.ndarray,
        counts: Sequence[int],
        class_names: Sequence[str],
        rotations: Sequence[int] = (0,),
    ):
        images = np.asarray(images)
        counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        class_names = [str(name) for name in class_names]
        rotations = tuple(int(r) for r in rotations)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(
                "Expected images as a uint8 array [num_examples, height, width, channels]. "
                f"Received: dtype={images.dtype}, shape={images.shape}"
            )
        if len(class_names) == 0:
            raise ValueError("Expected at least one class. Received: 0 classes")
        if len(counts) != len(class_names):
            raise ValueError(
                "Expected one count per class name. "
                f"Received: {len(counts)} counts for {len(class_names)} class names"
            )
        if len(set(class_names)) != len(class_names):
            duplicates = sorted({n for n in class_names if class_names.count(n) > 1})
            raise ValueError(f"Expected unique class names. Received duplicates: {duplicates[:5]}")
        if counts.min() < 1:
            empty = [class_names[i] for i in np.flatnonzero(counts < 1)[:5]]
            raise ValueError(
                f"Expected at least one image per class. Received: no images for {empty}"
            )
        if counts.sum() != len(images):
            raise ValueError(
                f"Expected sum(counts) == number of images. Received: sum(counts)={counts.sum()}, "
                f"images.shape={images.shape}"
            )
        if (
            not rotations
            or len(set(rotations)) != len(rotations)
            or not set(rotations) <= set(QUARTER_TURNS)
        ):
            raise ValueError(
                "Expected rotations to be distinct quarter turns from (0, 1, 2, 3). "
                f"Received: rotations={rotations}"
            )
        if rotations != (0,) and images.shape[1] != images.shape[2]:
            raise ValueError(
                "Expected square images for rotations. "
                f"Received: image shape {images.shape[1:]} with rotations={rotations}"
            )
        self._images = images
        self._counts = counts
        self._offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._class_names = class_names
        self._rotations = rotations
        self._name_index = {name: i for i, name in enumerate(class_names)}

    # ---- What it holds -------------------------------------------------------------------

    @property
    def images(self) -> np.ndarray:
        """uint8 array `[num_examples, height, width, channels]`, grouped by base class."""
        return self._images

    @property
    def counts(self) -> np.ndarray:
        """Number of images of each base class."""
        return self._counts

    @property
    def offsets(self) -> np.ndarray:
        """Row of `images` where each base class starts."""
        return self._offsets

    @property
    def base_class_names(self) -> list[str]:
        """Names of the base classes (before rotations)."""
        return list(self._class_names)

    @property
    def rotations(self) -> tuple[int, ...]:
        """Quarter turns that make classes out of each base class."""
        return self._rotations

    @property
    def num_base_classes(self) -> int:
        return len(self._class_names)

    @property
    def num_classes(self) -> int:
        """Number of classes episodes draw from: base classes x rotations."""
        return len(self._class_names) * len(self._rotations)

    @property
    def class_names(self) -> list[str]:
        """Name of each class; rotated classes read `"<name>@rot<degrees>"`."""
        return [
            name if r == 0 else f"{name}@rot{90 * r}"
            for name in self._class_names
            for r in self._rotations
        ]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """`(height, width, channels)` of every image."""
        return tuple(int(d) for d in self._images.shape[1:])

    @property
    def num_examples(self) -> int:
        """Number of stored images (rotations not counted)."""
        return int(self._counts.sum())

    def images_of(self, name: str) -> np.ndarray:
        """The stored images of the base class `name`."""
        index = self._index_of(name)
        start = self._offsets[index]
        return self._images[start : start + self._counts[index]]

    def __repr__(self) -> str:
        return (
            f"ClassImages(num_classes={self.num_classes}, "
            f"num_base_classes={self.num_base_classes}, num_examples={self.num_examples}, "
            f"image_shape={self.image_shape}, rotations={self.rotations})"
        )

    # ---- New collections from this one --------------------------------------------------

    def with_rotations(self, rotations: Sequence[int] = QUARTER_TURNS) -> "ClassImages":
        """The same images, with every base class also turned by `rotations` quarter turns.

        Args:
            rotations: quarter turns (counter-clockwise) that each make a class;
                `(0, 1, 2, 3)` multiplies the number of classes by 4.

        Returns:
            A `ClassImages` sharing this one's arrays.
        """
        return ClassImages(self._images, self._counts, self._class_names, rotations)

    def select(self, names: Iterable[str]) -> "ClassImages":
        """The base classes `names`, in that order, keeping the rotations.

        Raises:
            ValueError: if a name is unknown or `names` is empty.
        """
        indices = [self._index_of(name) for name in names]
        if not indices:
            raise ValueError("Expected at least one class name to select. Received: none")
        rows = np.concatenate(
            [np.arange(self._offsets[i], self._offsets[i] + self._counts[i]) for i in indices]
        )
        return ClassImages(
            self._images[rows],
            self._counts[indices],
            [self._class_names[i] for i in indices],
            self._rotations,
        )

    @classmethod
    def concatenate(cls, parts: Sequence["ClassImages"]) -> "ClassImages":
        """Pools the classes of `parts` (for example two official splits).

        Raises:
            ValueError: if the parts differ in image shape or rotations, or
                share a class name.
        """
        parts = list(parts)
        if not parts:
            raise ValueError("Expected at least one ClassImages to concatenate. Received: none")
        for part in parts[1:]:
            if part.image_shape != parts[0].image_shape or part.rotations != parts[0].rotations:
                raise ValueError(
                    "Expected parts with the same image shape and rotations. Received: "
                    f"{parts[0].image_shape} {parts[0].rotations} and "
                    f"{part.image_shape} {part.rotations}"
                )
        names = [name for part in parts for name in part.base_class_names]
        if len(set(names)) != len(names):
            seen, shared = set(), []
            for name in names:
                if name in seen:
                    shared.append(name)
                seen.add(name)
            raise ValueError(
                f"Expected parts with distinct class names. Received shared names: {shared[:5]}"
            )
        return cls(
            np.concatenate([part.images for part in parts]),
            np.concatenate([part.counts for part in parts]),
            names,
            parts[0].rotations,
        )

    # ---- Building from data -------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: np.ndarray | Sequence,
        *,
        preprocessing: ImagePreprocessing | None = None,
        scale: float | None = None,
        class_names: Sequence[str] | None = None,
    ) -> "ClassImages":
        """Groups in-memory images by their labels (see `from_dataset` for the arguments).

        Args:
            images: `[num_examples, height, width]` or `[num_examples, height,
                width, channels]` pixels, by the contract of
                `tfmeta.data.pixels` (uint8; other integers in 0..255; floats
                in `[0, 1]` after `scale`).
            labels: `[num_examples]` integer ids or strings.

        Raises:
            ValueError: if images and labels differ in length, or as `from_dataset`.

        Example:

        >>> images = np.random.default_rng(0).random([12, 8, 8, 1]) * 255  # floats in 0..255
        >>> data = tfmeta.data.ClassImages.from_arrays(images, np.arange(12) % 3, scale=1 / 255)
        >>> data.num_classes, data.image_shape
        (3, (8, 8, 1))
        """
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim not in (3, 4) or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                "Expected images [num_examples, height, width(, channels)] and labels "
                "[num_examples] of the same length. Received: "
                f"images.shape={images.shape}, labels.shape={labels.shape}"
            )
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        return cls.from_dataset(
            dataset, preprocessing=preprocessing, scale=scale, class_names=class_names
        )

    @classmethod
    def from_dataset(
        cls,
        dataset: tf.data.Dataset,
        *,
        preprocessing: ImagePreprocessing | None = None,
        scale: float | None = None,
        class_names: Sequence[str] | None = None,
        image_key: str = "image",
        label_key: str = "label",
        batch_size: int = 1024,
    ) -> "ClassImages":
        """Reads a whole dataset of labelled images into memory, grouped by class.

        Pixels must keep the contract of `tfmeta.data.pixels`: uint8 (or
        uint16) images use their dtype's range, other integer images 0..255,
        floating-point images `[0, 1]` after `scale`. Images outside it are
        refused with a ValueError naming the first one, never clipped.

        Args:
            dataset: a `tf.data.Dataset` of `(image, label)` pairs, or of dicts
                holding `image_key` and `label_key` (TFDS's layout). Labels are
                integer ids or strings.
            preprocessing: applied to every image; `None` keeps images as
                they are (they must then share one shape).
            scale: a factor for floating-point pixels, e.g. `1 / 255` for
                floats in 0..255 (as `keras.layers.Rescaling`); not for
                integer images.
            class_names: the name of each integer label id (for example
                `ClassLabel.names`); by default the id itself, zero-padded so
                that names sort like ids. Ignored for string labels.
            image_key: the image entry of dict elements.
            label_key: the label entry of dict elements.
            batch_size: images decoded per step.

        Returns:
            A `ClassImages` with the classes sorted by name.

        Raises:
            ValueError: if the elements hold no image or label, pixels break
                the contract, or the dataset is empty.

        Example:

        >>> pairs = tf.data.Dataset.from_tensor_slices(
        ...     (np.zeros([6, 8, 8, 3], np.uint8), ["cat", "dog", "cat", "dog", "cat", "dog"]))
        >>> tfmeta.data.ClassImages.from_dataset(pairs).class_names
        ['cat', 'dog']
        """
        spec = dataset.element_spec
        if isinstance(spec, dict):
            missing = [key for key in (image_key, label_key) if key not in spec]
            if missing:
                raise ValueError(
                    f"Expected dataset elements with an image feature {image_key!r} and a label "
                    f"feature {label_key!r}. Missing: {missing}; received features: {sorted(spec)}"
                )
            dataset = dataset.map(lambda ex: (ex[image_key], ex[label_key]))
        elif not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                "Expected a dataset of (image, label) pairs or of dicts with "
                f"{image_key!r} and {label_key!r} entries. Received: element_spec={spec}"
            )
        image_spec, label_spec = dataset.element_spec
        if not isinstance(image_spec, tf.TensorSpec) or image_spec.shape.rank not in (2, 3):
            raise ValueError(
                "Expected images of shape [height, width] or [height, width, channels]. "
                f"Received: image spec {image_spec}"
            )
        if (
            not isinstance(label_spec, tf.TensorSpec)
            or label_spec.shape.rank != 0
            or not (label_spec.dtype.is_integer or label_spec.dtype == tf.string)
        ):
            raise ValueError(
                f"Expected scalar integer or string labels. Received: label spec {label_spec}"
            )
        scale = pixels.check_scale(scale, image_spec.dtype)

        def transform(image, label):
            low, high = tf.reduce_min(image), tf.reduce_max(image)
            image = pixels.to_unit_float(image, scale)
            if preprocessing is not None:
                image = preprocessing(image)
            else:
                image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
                image = image[..., tf.newaxis] if image.shape.rank == 2 else image
            return image, label, tf.cast(low, tf.float64), tf.cast(high, tf.float64)

        dataset = dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
        batches = list(dataset.batch(batch_size).prefetch(2).as_numpy_iterator())
        if not batches:
            raise ValueError(
                "Expected a dataset with at least one example. Received: an empty dataset"
            )
        images, labels, lows, highs = (np.concatenate(parts) for parts in zip(*batches))
        pixels.check_ranges(lows, highs, image_spec.dtype, scale)
        return cls._grouped(images, labels, class_names)

    @classmethod
    def _grouped(cls, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None):
        """Groups `images` by `labels`, classes sorted by name."""
        ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if labels.dtype.kind in "SO":
            names = [
                label.decode("utf-8") if isinstance(label, bytes) else str(label) for label in ids
            ]
        elif class_names is not None:
            if ids.min() < 0 or ids.max() >= len(class_names):
                raise ValueError(
                    f"Expected label ids in [0, {len(class_names)}) to match class_names. "
                    f"Received: ids from {ids.min()} to {ids.max()}"
                )
            names = [str(class_names[i]) for i in ids]
        else:
            width = len(str(int(ids.max())))
            names = [str(int(i)).zfill(width) for i in ids]
        class_order = np.argsort(np.asarray(names), kind="stable")
        rank = np.empty_like(class_order)
        rank[class_order] = np.arange(len(class_order))
        rows = np.argsort(rank[inverse.reshape(-1)], kind="stable")
        return cls(images[rows], counts[class_order], [names[i] for i in class_order])

    # ---- On disk ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the collection to an `.npz` file, atomically.

        The file is written next to `path` under a temporary name and renamed
        into place, so a crash never leaves a half-written file at `path`.

        Returns:
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        try:
            with open(tmp, "xb") as f:  # Unlike tempfile.mkstemp, keeps the umask's permissions.
                np.savez(
                    f,
                    format_version=np.int64(_FORMAT_VERSION),
                    images=self._images,
                    counts=self._counts,
                    class_names=np.asarray(self._class_names, dtype=np.str_),
                    rotations=np.asarray(self._rotations, dtype=np.int64),
                )
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ClassImages":
        """Reads a collection written by `save`.

        Raises:
            FileNotFoundError: if `path` does not exist.
            ValueError: if the file is not a `ClassImages` file of this version.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Expected a ClassImages .npz file. Received: {str(path)!r}, which does not exist"
            )
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format_version"]) if "format_version" in data else None
            if version != _FORMAT_VERSION:
                raise ValueError(
                    f"Expected a ClassImages file of format version {_FORMAT_VERSION}. "
                    f"Received: version {version} in {str(path)!r}"
                )
            return cls(
                data["images"],
                data["counts"],
                [str(name) for name in data["class_names"]],
                tuple(int(r) for r in data["rotations"]),
            )

    def _index_of(self, name: str) -> int:
        if name not in self._name_index:
            shown = self._class_names[:5]
            raise ValueError(
                f"Unknown class name {name!r}. Expected one of the {len(self._class_names)} base "
                f"class names, e.g. {shown}"
            )
        return self._name_index[name]
