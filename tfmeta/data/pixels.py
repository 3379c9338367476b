"""The pixel contract of images handed to `tfmeta.data`: which values each dtype may hold.

- `uint8` and `uint16` images use their dtype's range (0..255, 0..65535).
- Any other integer dtype (numpy's default `int64`, `int32`) must hold
  0..255, the range image files decode to.
- Floating-point images must lie in `[0, 1]`, after an optional `scale`
  factor (`scale=1/255` for floats in 0..255, as `keras.layers.Rescaling`).

Values outside the contract are refused, never clipped: float images in
0..255 clipped to `[0, 1]` would turn almost every pixel white.

Example:

>>> image = tf.constant([[0.0, 127.5], [255.0, 51.0]])
>>> tfmeta.data.pixels.to_unit_float(image, scale=1 / 255).numpy()
array([[0. , 0.5],
       [1. , 0.2]], dtype=float32)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

# Integer dtypes whose range is itself the pixel range.
_FULL_RANGE_DTYPES = (tf.uint8, tf.uint16)
_OTHER_INTEGER_MAX = 255
_FLOAT_TOLERANCE = 1e-6


def check_scale(scale: Any, dtype: tf.DType) -> float | None:
    """Returns `scale` as a float (or None) if it suits images of `dtype`.

    Raises:
        ValueError: for a scale that is not a positive finite number, or a
            scale given for integer images (they are scaled by their dtype).
    """
    dtype = tf.as_dtype(dtype)
    if not (dtype.is_integer or dtype.is_floating):
        raise ValueError(
            "Expected images of an integer or floating-point dtype. "
            f"Received: images of dtype {dtype.name}"
        )
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
        math.isfinite(scale) and scale > 0
    ):
        raise ValueError(
            f"Expected `scale` to be a positive finite number. Received: scale={scale!r}"
        )
    if dtype.is_integer:
        raise ValueError(
            f"Expected `scale` only for floating-point images: {dtype.name} images are scaled by "
            f"their dtype. Received: scale={scale!r} for images of dtype {dtype.name}; leave "
            "scale unset"
        )
    return float(scale)


def to_unit_float(image: tf.Tensor, scale: float | None = None) -> tf.Tensor:
    """The image as float32 pixels in `[0, 1]`, by the contract above (values not checked).

    Args:
        image: pixels of any integer or floating-point dtype.
        scale: a factor for floating-point pixels (None: 1).

    Returns:
        A float32 tensor of the image's shape.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype in _FULL_RANGE_DTYPES:
        return tf.image.convert_image_dtype(image, tf.float32)
    if image.dtype.is_integer:
        return tf.cast(image, tf.float32) / float(_OTHER_INTEGER_MAX)
    image = tf.cast(image, tf.float32)
    return image if scale is None else image * scale


def integer_range(dtype: tf.DType) -> tuple[int, int]:
    """The `(low, high)` values integer images of `dtype` may hold."""
    dtype = tf.as_dtype(dtype)
    return 0, int(dtype.max) if dtype in _FULL_RANGE_DTYPES else _OTHER_INTEGER_MAX


def check_ranges(
    lows: np.ndarray, highs: np.ndarray, dtype: tf.DType, scale: float | None = None
) -> None:
    """Raises a ValueError naming the first image whose values break the contract.

    Args:
        lows: the smallest raw value of each image.
        highs: the largest raw value of each image.
        dtype: the images' dtype.
        scale: the factor given for floating-point images.
    """
    dtype = tf.as_dtype(dtype)
    lows, highs = np.asarray(lows, np.float64), np.asarray(highs, np.float64)
    if dtype.is_integer:
        low, high = integer_range(dtype)
        inside = (lows >= low) & (highs <= high)
    else:  # compared after scaling, with float32's rounding allowed for
        factor = scale or 1.0
        inside = (lows * factor >= 0.0) & (highs * factor <= 1.0 + _FLOAT_TOLERANCE)
    bad = np.flatnonzero(~inside)  # NaN fails too
    if not len(bad):
        return
    first = int(bad[0])
    received = (
        f"Received: {len(bad)} of {len(lows)} images outside it (image {first} holds values "
        f"from {lows[first]:g} to {highs[first]:g})"
    )
    if dtype.is_integer:
        raise ValueError(
            f"Expected {dtype.name} pixels in 0..{high} ({_CONTRACT}). {received}; cast 16-bit "
            "images to uint16, or scale other values to 0..255 first"
        )
    given = "" if scale is None else f" after scale={scale:g}"
    hint = (
        "; pass scale=1/255 for float images in 0..255"
        if scale is None and np.nanmin(lows) >= 0 and np.nanmax(highs) <= 255
        else "; map them to [0, 1] first (pixels are refused, never clipped)"
    )
    raise ValueError(f"Expected float pixels in [0, 1]{given} ({_CONTRACT}). {received}{hint}")


_CONTRACT = (
    "uint8/uint16 images use their dtype's range, other integers 0..255, floats [0, 1] times an "
    "optional scale"
)
