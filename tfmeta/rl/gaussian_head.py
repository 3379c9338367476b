"""`GaussianHead`: the output layer of a Gaussian policy (state-dependent mean, learned log-std)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmeta")
class GaussianHead(keras.layers.Layer):
    """A linear mean and a learned, state-independent log standard deviation.

    Outputs `[mean, log_std]` concatenated on the last axis (width
    `2 * action_dim`), the layout `tfmeta.rl.distributions.DiagonalGaussian`
    reads. The log-std is a trainable weight like the kernel, so the inner
    policy-gradient step adapts the exploration noise too (as in Finn et al.
    2017).

    Args:
        action_dim: number of action dimensions.
        initial_log_std: starting value of every log standard deviation.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    ```python
    import keras
    from tfmeta.rl.gaussian_head import GaussianHead

    policy = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="tanh"),
                               GaussianHead(2)])
    policy(keras.ops.zeros((1, 3))).shape  # (1, 4): mean, log_std
    ```
    """

    def __init__(self, action_dim: int, initial_log_std: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
            raise ValueError(
                f"Expected `action_dim` to be an integer >= 1. Received: action_dim={action_dim!r}"
            )
        self.action_dim = action_dim
        self.initial_log_std = float(initial_log_std)
        self.mean = keras.layers.Dense(action_dim, name="mean", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.mean.build(input_shape)
        self.log_std = self.add_weight(
            shape=(self.action_dim,),
            initializer=keras.initializers.Constant(self.initial_log_std),
            name="log_std",
        )

    def call(self, inputs):
        mean = self.mean(inputs)
        log_std = ops.broadcast_to(ops.cast(self.log_std, mean.dtype), ops.shape(mean))
        return ops.concatenate([mean, log_std], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2 * self.action_dim,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(action_dim=self.action_dim, initial_log_std=self.initial_log_std)
        return config
