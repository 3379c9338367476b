"""Decoding a list of image files, each with its class name, into cached `ClassImages`.

The benchmark readers (`tfmeta.data.mini_imagenet`, `tfmeta.data.cub`) know
which files make up a split; this module turns them into the uint8 arrays
episodes are cut from, once per machine. The result is cached under a key
made of the files' relative paths, sizes and modification times and the
preprocessing: unlike `tfmeta.data.image_folder_class_images`, which hashes
every byte of a folder, because these folders hold up to hundreds of GB
(tieredImageNet's ILSVRC images), which hashing would read on every call.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import tensorflow as tf

from tfmeta.data.cache import class_images_cache_path, load_or_build
from tfmeta.data.class_images import ClassImages
from tfmeta.data.preprocessing import ImagePreprocessing


def files_fingerprint(paths: Sequence[Path], root: Path, content: bool = True) -> str:
    """A SHA-256 over the path (relative to `root`) of every file of `paths`, and its bytes.

    With `content=False`, each file's size and modification time stand in for
    its bytes: a file replaced by another of the same size and time goes
    unnoticed, but no byte is read.
    """
    digest = hashlib.sha256()
    for path in paths:
        if content:
            key = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            stat = path.stat()
            key = f"{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(f"{path.relative_to(root).as_posix()}\0{key}\n".encode())
    return digest.hexdigest()


def class_images_from_files(
    paths: Sequence[Path],
    class_names: Sequence[str],
    preprocessing: ImagePreprocessing,
    *,
    root: Path,
    label: str,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> ClassImages:
    """Decodes `paths[i]` (PNG, JPEG, GIF or BMP) as an image of class `class_names[i]`.

    Args:
        paths: the image files.
        class_names: the class of each file.
        preprocessing: decodes straight to its channels, then resizes
            (`ImagePreprocessing.decode`).
        root: the data folder; cache keys use paths relative to it, so the
            same data elsewhere shares a cache entry.
        label: a readable prefix of the cache file name.
        cache: keep the decoded arrays in an `.npz` under `cache_dir`.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Returns:
        A `ClassImages`, classes sorted by name.

    Raises:
        ValueError: naming the first file that cannot be decoded.
    """
    paths = [Path(path) for path in paths]
    if len(paths) != len(class_names) or not paths:
        raise ValueError(
            "Expected one class name per image file and at least one file. Received: "
            f"{len(paths)} files, {len(class_names)} class names"
        )

    def build() -> ClassImages:
        files = tf.data.Dataset.from_tensor_slices(
            ([str(path) for path in paths], [str(name) for name in class_names])
        )
        decoded = files.map(
            lambda path, name: (decode_image(tf.io.read_file(path), preprocessing.channels), name),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        try:
            return ClassImages.from_dataset(decoded, preprocessing=preprocessing)
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(_first_undecodable(paths, preprocessing.channels)) from error

    path = None
    if cache:
        path = class_images_cache_path(
            cache_dir, label, "image_files", files_fingerprint(paths, root, content=False),
            preprocessing,
        )
    return load_or_build(path, build)


def decode_image(encoded: tf.Tensor, channels: int) -> tf.Tensor:
    """Decodes one PNG, JPEG, GIF or BMP image (a scalar string) to `channels`, unresized.

    `ClassImages.from_dataset` then applies the preprocessing, the same for
    every reader of encoded images (files, or members of ILSVRC's train tar).
    """
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def _first_undecodable(paths: Sequence[Path], channels: int) -> str:
    """The message naming the first of `paths` that TensorFlow cannot decode."""
    for path in paths:
        try:
            decode_image(tf.io.read_file(str(path)), channels)
        except tf.errors.InvalidArgumentError as error:
            reason = error.message.splitlines()[0]
            return (
                f"Expected image files TensorFlow can decode (PNG, JPEG, GIF, BMP). Received: "
                f"{str(path)!r}, which it cannot ({reason}); replace or remove the file"
            )
    return "Expected image files TensorFlow can decode. Received: a file that failed to decode"
