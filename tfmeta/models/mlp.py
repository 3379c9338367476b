"""The fully connected regression network of the sinusoid experiments."""

from __future__ import annotations

from typing import Sequence

import keras


def mlp(
    input_dim: int = 1,
    hidden_units: Sequence[int] = (40, 40),
    output_dim: int = 1,
    activation: str = "relu",
    name: str = "mlp",
) -> keras.Model:
    """A built MLP: `Dense(units, activation)` per hidden layer, then a linear `Dense(output_dim)`.

    The defaults are the sinusoid network of Finn et al. 2017 (two hidden
    layers of 40 ReLU units).

    Example:

    ```python
    net = tfmeta.models.mlp()  # 1 -> 40 -> 40 -> 1
    ```
    """
    layers = [keras.Input((input_dim,))]
    for index, units in enumerate(hidden_units):
        layers.append(keras.layers.Dense(units, activation=activation, name=f"hidden{index}"))
    layers.append(keras.layers.Dense(output_dim, name="output"))
    return keras.Sequential(layers, name=name)
