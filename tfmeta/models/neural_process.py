"""The encoder and decoder MLPs of a Conditional Neural Process (Garnelo et al. 2018)."""

from __future__ import annotations

from typing import Sequence

import keras


def _mlp(input_dim: int, units: Sequence[int], name: str) -> keras.Model:
    layers = [keras.Input((input_dim,))]
    for index, size in enumerate(units[:-1]):
        layers.append(keras.layers.Dense(size, activation="relu", name=f"hidden{index}"))
    layers.append(keras.layers.Dense(units[-1], name="output"))
    return keras.Sequential(layers, name=name)


def cnp_encoder(
    x_dim: int = 1, y_dim: int = 1, units: Sequence[int] = (128, 128, 128, 128),
    name: str = "cnp_encoder",
) -> keras.Model:
    """A built encoder: one context point `concat(x, y)` -> its representation `[units[-1]]`.

    ReLU MLP with a linear last layer; the defaults are the 1-D regression
    encoder of Garnelo et al. 2018 (their released code: 4 x 128).

    Example:

    ```python
    encoder = tfmeta.models.cnp_encoder()  # (2,) -> (128,)
    ```
    """
    return _mlp(x_dim + y_dim, units, name)


def cnp_decoder(
    x_dim: int = 1, y_dim: int = 1, representation_dim: int = 128,
    units: Sequence[int] = (128, 128), name: str = "cnp_decoder",
) -> keras.Model:
    """A built decoder: `concat(r, x)` -> `[2 * y_dim]` (mean, then raw standard deviation).

    ReLU MLP (the defaults: Garnelo et al. 2018's 2 x 128) with a linear last
    layer of `2 * y_dim` units; `tfmeta.ConditionalNeuralProcess` maps the
    second half to a positive standard deviation.

    Example:

    ```python
    decoder = tfmeta.models.cnp_decoder()  # (129,) -> (2,)
    ```
    """
    return _mlp(representation_dim + x_dim, (*units, 2 * y_dim), name)
