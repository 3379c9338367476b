"""Wide ResNet (Zagoruyko & Komodakis 2016), the WRN-28-10 backbone of LEO and S2M2 few-shot
work."""

from __future__ import annotations

import keras

from tfmeta.argument_validation import check_integer


def wide_resnet(
    input_shape: tuple[int, int, int] = (84, 84, 3),
    num_classes: int | None = None,
    depth: int = 28,
    width: int = 10,
    name: str | None = None,
) -> keras.Model:
    """A built pre-activation Wide ResNet WRN-`depth`-`width`.

    A 3x3 stem conv with 16 channels, then three groups of `(depth - 4) / 6`
    pre-activation blocks (BatchNorm -> ReLU -> conv 3x3, twice) with
    `16 * width`, `32 * width` and `64 * width` channels, the last two
    groups starting with stride 2; a 1x1 projection shortcut where the shape
    changes; BatchNorm -> ReLU -> global mean pool. Convolutions have no
    bias. WRN-28-10 has 36.5M parameters with a 10-class head, as published.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: units of a final `Dense` head; None returns the embedding
            network (`[batch, 64 * width]`: 640 for WRN-28-10).
        depth: total depth; `depth - 4` must be a multiple of 6.
        width: the widening factor.
        name: the model's name (default `"wrn_<depth>_<width>"`).

    Returns:
        A functional `keras.Model`.

    Example:

    ```python
    net = tfmeta.models.wide_resnet((84, 84, 3))  # WRN-28-10 embedding
    net(tf.zeros((2, 84, 84, 3))).shape  # (2, 640)
    ```
    """
    depth, width = check_integer("depth", depth), check_integer("width", width)
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"Expected depth = 6n + 4 with n >= 1 (e.g. 28). Received: depth={depth}")
    blocks = (depth - 4) // 6
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    for group, channels in enumerate((16 * width, 32 * width, 64 * width)):
        for block in range(blocks):
            strides = 2 if group > 0 and block == 0 else 1
            x = _block(x, channels, strides, f"group{group}_block{block}")
    x = keras.layers.BatchNormalization(name="final_bn")(x)
    x = keras.layers.ReLU(name="final_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="mean_pool")(x)
    if num_classes is not None:
        x = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(inputs, x, name=name or f"wrn_{depth}_{width}")


def _block(x, channels: int, strides: int, prefix: str):
    """A pre-activation block; the shortcut takes the activated input where it projects."""
    activated = keras.layers.BatchNormalization(name=f"{prefix}_bn0")(x)
    activated = keras.layers.ReLU(name=f"{prefix}_relu0")(activated)
    shortcut = x
    if strides != 1 or x.shape[-1] != channels:
        shortcut = keras.layers.Conv2D(
            channels, 1, strides=strides, use_bias=False, name=f"{prefix}_shortcut_conv"
        )(activated)
    y = keras.layers.Conv2D(
        channels, 3, strides=strides, padding="same", use_bias=False, name=f"{prefix}_conv0"
    )(activated)
    y = keras.layers.BatchNormalization(name=f"{prefix}_bn1")(y)
    y = keras.layers.ReLU(name=f"{prefix}_relu1")(y)
    y = keras.layers.Conv2D(
        channels, 3, padding="same", use_bias=False, name=f"{prefix}_conv1"
    )(y)
    return keras.layers.Add(name=f"{prefix}_add")([y, shortcut])
