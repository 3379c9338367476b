"""ResNet-12, the residual few-shot backbone of TADAM (Oreshkin et al. 2018) and MetaOptNet."""

from __future__ import annotations

from typing import Sequence

import keras

# The channel widths of MetaOptNet's ResNet-12 (Lee et al. 2019): 12.4M parameters at 84x84x3.
RESNET12_WIDTHS = (64, 160, 320, 640)


def resnet12(
    input_shape: tuple[int, int, int] = (84, 84, 3),
    num_classes: int | None = None,
    widths: Sequence[int] = RESNET12_WIDTHS,
    leaky_relu_slope: float = 0.1,
    name: str = "resnet12",
) -> keras.Model:
    """A built ResNet-12: 4 residual blocks, each halving the resolution, then a mean pool.

    Each block: 3 x [conv 3x3 (no bias) -> BatchNorm], LeakyReLU between
    them; a 1x1 conv + BatchNorm shortcut is added before the last
    LeakyReLU; then 2x2 max-pooling. As in MetaOptNet, without DropBlock
    (add regularisation to the model yourself if you need it). 12 weight
    layers: 4 blocks x 3 convs.

    Args:
        input_shape: `(height, width, channels)` (84x84x3 for mini-ImageNet,
            32x32x3 for CIFAR-FS and FC100).
        num_classes: units of a final `Dense` head; None (default) returns
            the embedding network (`[batch, widths[-1]]`), as metric learners
            (ProtoNet, R2D2) use it.
        widths: channels of the four blocks; `(64, 128, 256, 512)` is the
            narrower variant some papers use.
        leaky_relu_slope: the negative slope of the activations.
        name: the model's name.

    Returns:
        A functional `keras.Model`.

    Example:

    ```python
    net = tfmeta.models.resnet12((84, 84, 3))
    net(tf.zeros((2, 84, 84, 3))).shape  # (2, 640)
    ```
    """
    widths = tuple(widths)
    if len(widths) != 4 or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise ValueError(f"Expected four positive channel widths. Received: widths={widths}")
    inputs = keras.Input(input_shape)
    x = inputs
    for block, filters in enumerate(widths):
        prefix = f"block{block}"
        shortcut = keras.layers.Conv2D(filters, 1, use_bias=False,
                                       name=f"{prefix}_shortcut_conv")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{prefix}_shortcut_bn")(shortcut)
        for layer in range(3):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"{prefix}_conv{layer}"
            )(x)
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn{layer}")(x)
            if layer < 2:
                x = keras.layers.LeakyReLU(leaky_relu_slope, name=f"{prefix}_relu{layer}")(x)
        x = keras.layers.Add(name=f"{prefix}_add")([x, shortcut])
        x = keras.layers.LeakyReLU(leaky_relu_slope, name=f"{prefix}_relu2")(x)
        x = keras.layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="mean_pool")(x)
    if num_classes is not None:
        x = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(inputs, x, name=name)
