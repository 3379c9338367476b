"""Conv-4, the reference few-shot image backbone (Vinyals et al. 2016, Finn et al. 2017)."""

from __future__ import annotations

import functools

import keras

from tfmeta.argument_validation import check_choice
from tfmeta.layers import GroupNormalization, TaskNormalization

NORMALIZATIONS = {
    "batch": keras.layers.BatchNormalization,
    "task": TaskNormalization,
    # Each example normalised over its own (height, width, channels): no statistics shared
    # between the examples of a batch, so a query is predicted alone as in any batch.
    "layer": functools.partial(GroupNormalization, groups=1),
    "none": None,
}
POOLINGS = ("mean", "flatten")  # the `pooling` of `conv4`


def conv4(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int | None = 5,
    filters: int = 64,
    max_pool: bool = False,
    normalization: str = "batch",
    pooling: str | None = None,
    name: str = "conv4",
) -> keras.Model:
    """A built Conv-4 network: 4 x [conv 3x3 -> normalisation -> ReLU], then a head.

    Two variants, as in the literature:

    - Omniglot (default): 64 filters, stride-2 convolutions with same
      padding, global mean pooling (learn2learn's `OmniglotCNN`).
    - mini-ImageNet (`max_pool=True`, `filters=32`, `input_shape=(84, 84, 3)`):
      stride-1 convolutions, each block followed by 2x2 max-pooling, then
      flattening.

    Args:
        input_shape: `(height, width, channels)`.
        num_classes: units of the final `Dense` layer (logits); None returns
            the embedding network without head (Prototypical Networks).
        filters: channels of every convolution.
        max_pool: the mini-ImageNet variant.
        normalization: `"batch"` (`keras.layers.BatchNormalization`),
            `"task"` (`tfmeta.layers.TaskNormalization`, TaskNorm-I: each
            example's own moments blended in with a learned weight), `"layer"`
            (`tfmeta.layers.GroupNormalization(groups=1)`: each example over its
            own positions and channels) or `"none"`. With `"layer"` or `"none"`
            no statistics are shared between examples, so every query is
            predicted alone as in any batch, whatever `query_statistics` says.
        pooling: how the last feature maps become the head's features:
            `"mean"` (global mean pooling: `filters` features) or `"flatten"`
            (every position: 2 x 2 x `filters` on 28 x 28 Omniglot, as the
            Omniglot model of Nichol et al.'s Reptile code). Default: `"mean"`
            for the Omniglot variant, `"flatten"` for the mini-ImageNet one.
        name: the model's name.

    Returns:
        A functional `keras.Model`.

    Example:

    ```python
    net = tfmeta.models.conv4((28, 28, 1), num_classes=5)
    logits = net(tf.zeros((2, 28, 28, 1)))  # shape (2, 5)
    ```
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    if pooling is None:
        pooling = "flatten" if max_pool else "mean"
    check_choice("pooling", pooling, POOLINGS)
    inputs = keras.Input(input_shape)
    x = inputs
    for block in range(4):
        x = keras.layers.Conv2D(
            filters,
            3,
            strides=1 if max_pool else 2,
            padding="same",
            name=f"block{block}_conv",
        )(x)
        if NORMALIZATIONS[normalization] is not None:
            x = NORMALIZATIONS[normalization](name=f"block{block}_bn")(x)
        x = keras.layers.ReLU(name=f"block{block}_relu")(x)
        if max_pool:
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    if pooling == "flatten":
        x = keras.layers.Flatten(name="flatten")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="mean_pool")(x)
    if num_classes is not None:
        x = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(inputs, x, name=name)
