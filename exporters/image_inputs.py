"""Signature inputs a client actually holds, turned into model inputs inside the graph.

A client holds images: encoded PNG/JPEG/GIF/BMP bytes (TF Serving's REST
API carries them as `{"b64": "..."}`) or raw uint8 pixels of any size. The
exported graph runs the training preprocessing on them
(`tfmeta.data.ImagePreprocessing`: decoding straight to the trained
channels, resizing with the trained method, inversion, scaling to `[0, 1]`),
so a request cannot be preprocessed differently from training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta.data.preprocessing import ImagePreprocessing, to_model_inputs
from tfmeta.exporters import request_checks
from tfmeta.exporters.task_format import TaskFormat


def check_preprocessing(preprocessing: Any, task: TaskFormat) -> ImagePreprocessing:
    """Returns `preprocessing` unless it does not produce the model's input shape.

    Raises:
        ValueError: for anything but an `ImagePreprocessing` whose
            `image_shape` is the model's per-example input shape.
    """
    if not isinstance(preprocessing, ImagePreprocessing):
        raise ValueError(
            "Expected `preprocessing` to be a `tfmeta.data.ImagePreprocessing` (the one the "
            "training images went through, e.g. `tfmeta.data.omniglot_preprocessing()`). "
            f"Received: {type(preprocessing).__name__}"
        )
    if tuple(preprocessing.image_shape) != tuple(task.input_shape):
        raise ValueError(
            f"Expected `preprocessing` to produce the model's input shape {task.input_shape}. "
            f"Received: preprocessing.image_shape={preprocessing.image_shape}"
        )
    return preprocessing


def from_encoded(encoded: tf.Tensor, preprocessing: ImagePreprocessing, name: str,
                 count: int | None, what: str = "") -> tf.Tensor:
    """Model inputs `[n, *image_shape]` from `[n]` encoded images (checked count)."""
    return _preprocessed(encoded, preprocessing.decode, preprocessing, name, count, what)


def from_pixels(pixels: tf.Tensor, preprocessing: ImagePreprocessing, name: str,
                count: int | None, what: str = "") -> tf.Tensor:
    """Model inputs `[n, *image_shape]` from `[n, height, width, channels]` uint8 pixels."""
    return _preprocessed(pixels, preprocessing.from_pixels, preprocessing, name, count, what)


def _preprocessed(images, preprocess, preprocessing, name, count, what) -> tf.Tensor:
    images = request_checks.checked_count(images, name, count, what)
    images = tf.map_fn(
        preprocess, images,
        fn_output_signature=tf.TensorSpec(preprocessing.image_shape, tf.uint8),
    )
    return to_model_inputs(images)


def example_images(count: int, preprocessing: ImagePreprocessing, seed: int = 0) -> np.ndarray:
    """`count` random uint8 images at the preprocessed size (for warmup requests)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *preprocessing.image_shape), dtype=np.uint8)


def encode_png(images: np.ndarray) -> np.ndarray:
    """PNG bytes of each uint8 `[height, width, channels]` image, as a numpy object array."""
    return np.array([tf.io.encode_png(image).numpy() for image in images], dtype=object)
