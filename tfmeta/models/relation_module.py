"""The networks of Relation Networks (Sung et al. 2018): its embedding and its comparison module."""

from __future__ import annotations

from typing import Sequence

import keras

MIN_EMBEDDING_SIZE = 10  # pixels: 10 -> 8 -> 4 -> 2 -> 1 through `relation_embedding`'s blocks


def relation_module(
    feature_shape: Sequence[int],
    filters: int = 64,
    hidden_units: int = 8,
    name: str = "relation_module",
) -> keras.Model:
    """A built relation module: scores a (class, query) pair of embeddings in [0, 1].

    Its input is a class's and a query's embeddings concatenated on the last
    axis, `(*feature_shape[:-1], 2 * feature_shape[-1])`. For feature maps
    (`feature_shape` of rank 3) it is the paper's: 2 x [conv 3x3 -> BatchNorm
    -> ReLU -> 2x2 max-pool (while the map is at least 2x2)], then
    `Dense(hidden_units, relu)` and `Dense(1, sigmoid)`; for vectors (rank 1)
    the two dense layers alone.

    Args:
        feature_shape: the per-example shape of the embedding network's output.
        filters: channels of the convolutions (the paper: 64).
        hidden_units: units of the hidden dense layer (the paper: 8).
        name: the model's name.

    Returns:
        A functional `keras.Model` mapping `[pairs, ...]` to scores `[pairs, 1]`.

    Example:

    ```python
    module = tfmeta.models.relation_module((2, 2, 64))  # input (2, 2, 128)
    ```
    """
    feature_shape = tuple(int(d) for d in feature_shape)
    if len(feature_shape) not in (1, 3):
        raise ValueError(
            "Expected the embedding's per-example shape as (D,) or (height, width, channels). "
            f"Received: feature_shape={feature_shape}"
        )
    inputs = keras.Input((*feature_shape[:-1], 2 * feature_shape[-1]))
    x = inputs
    if len(feature_shape) == 3:
        for block in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{block}_conv")(x)
            x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu")(x)
            if x.shape[1] >= 2 and x.shape[2] >= 2:
                x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(hidden_units, activation="relu", name="hidden")(x)
    x = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    return keras.Model(inputs, x, name=name)


def relation_embedding(
    input_shape: Sequence[int] = (28, 28, 1),
    filters: int = 64,
    name: str = "relation_embedding",
) -> keras.Model:
    """A built copy of the paper's embedding network, which keeps feature maps.

    4 x [conv 3x3 -> BatchNorm -> ReLU]: the first two convolutions unpadded
    and each followed by 2x2 max-pooling, the last two padded and unpooled.
    A 28x28 Omniglot image gives 5x5 maps (84x84 mini-ImageNet: 19x19), for
    `relation_module` to compare; Conv-4's stride-2 blocks would leave 2x2.

    Args:
        input_shape: `(height, width, channels)`.
        filters: channels of every convolution (the paper: 64).
        name: the model's name.

    Returns:
        A functional `keras.Model` mapping images to `[n, h, w, filters]` maps.

    Example:

    ```python
    embedding = tfmeta.models.relation_embedding((28, 28, 1))  # outputs (5, 5, 64)
    module = tfmeta.models.relation_module(embedding.outputs[0].shape[1:])
    learner = tfmeta.RelationNetwork(embedding, module, ways=5)
    ```
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or min(input_shape[:2]) < MIN_EMBEDDING_SIZE:
        raise ValueError(
            f"Expected images (height, width, channels) of at least {MIN_EMBEDDING_SIZE}x"
            f"{MIN_EMBEDDING_SIZE}: two unpadded convolutions and poolings leave 1x1 maps "
            f"from them. Received: input_shape={input_shape}"
        )
    inputs = keras.Input(input_shape)
    x = inputs
    for block in range(4):
        pooled = block < 2
        x = keras.layers.Conv2D(filters, 3, padding="valid" if pooled else "same",
                                name=f"block{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = keras.layers.ReLU(name=f"block{block}_relu")(x)
        if pooled:
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name=name)
