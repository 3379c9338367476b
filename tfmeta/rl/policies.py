"""The policy networks of the meta-RL literature, as built Keras models."""

from __future__ import annotations

from typing import Sequence

import keras

from tfmeta.rl.gaussian_head import GaussianHead


def _hidden_layers(
    observation_dim: int, hidden_units: Sequence[int], activation: str, dtype: str | None
) -> list:
    if (
        isinstance(observation_dim, bool)
        or not isinstance(observation_dim, int)
        or observation_dim < 1
    ):
        raise ValueError(
            "Expected `observation_dim` to be an integer >= 1. "
            f"Received: observation_dim={observation_dim!r}"
        )
    layers = [keras.Input((observation_dim,), dtype=dtype)]
    for index, units in enumerate(hidden_units):
        layers.append(
            keras.layers.Dense(units, activation=activation, name=f"hidden{index}", dtype=dtype)
        )
    return layers


def gaussian_mlp_policy(
    observation_dim: int,
    action_dim: int,
    hidden_units: Sequence[int] = (100, 100),
    activation: str = "tanh",
    initial_log_std: float = 0.0,
    dtype: str | None = None,
    name: str = "gaussian_mlp_policy",
) -> keras.Model:
    """A built MLP policy for continuous actions: hidden layers, then a `GaussianHead`.

    The defaults are the policy of Finn et al. 2017 (two hidden layers of 100
    units, a learned state-independent log standard deviation starting at 0);
    the paper's code used ReLU, rllab's default is tanh. `dtype` (e.g.
    `"float64"`) applies to every layer; None uses Keras's default.

    Returns:
        A model mapping observations `[batch, observation_dim]` to
        `[batch, 2 * action_dim]` (mean, log_std), read by
        `tfmeta.rl.distributions.DiagonalGaussian`.

    Example:

    ```python
    from tfmeta import rl
    policy = rl.gaussian_mlp_policy(observation_dim=2, action_dim=2)   # 2D navigation
    ```
    """
    layers = _hidden_layers(observation_dim, hidden_units, activation, dtype)
    layers.append(
        GaussianHead(action_dim, initial_log_std=initial_log_std, name="gaussian", dtype=dtype)
    )
    return keras.Sequential(layers, name=name)


def categorical_mlp_policy(
    observation_dim: int,
    num_actions: int,
    hidden_units: Sequence[int] = (100, 100),
    activation: str = "tanh",
    dtype: str | None = None,
    name: str = "categorical_mlp_policy",
) -> keras.Model:
    """A built MLP policy for discrete actions: hidden layers, then linear logits.

    Returns:
        A model mapping observations `[batch, observation_dim]` to logits
        `[batch, num_actions]`, read by `tfmeta.rl.distributions.Categorical`.

    Example:

    ```python
    from tfmeta import rl
    policy = rl.categorical_mlp_policy(observation_dim=1, num_actions=5)
    ```
    """
    if isinstance(num_actions, bool) or not isinstance(num_actions, int) or num_actions < 2:
        raise ValueError(
            f"Expected `num_actions` to be an integer >= 2. Received: num_actions={num_actions!r}"
        )
    layers = _hidden_layers(observation_dim, hidden_units, activation, dtype)
    layers.append(keras.layers.Dense(num_actions, name="logits", dtype=dtype))
    return keras.Sequential(layers, name=name)
