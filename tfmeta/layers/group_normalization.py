"""GroupNormalization whose moments are differentiable twice, for second-order meta-learning.

Keras's `GroupNormalization` takes its moments from `tf.nn.moments`, which
stops the gradient through the mean inside the variance. First derivatives
are unchanged by that (the variance's derivative in the mean is zero), but
second derivatives are not, so a second-order meta-gradient through it is
off. This layer computes the same normalisation with the variance of the
centred values, exact to every order. It normalises each example on its
own: no statistics are shared between the examples of a batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfmeta")
class GroupNormalization(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization` (channels last) with exact second derivatives.

    Each example's channels are split into `groups` groups, each normalised
    with its own mean and variance over the example's positions and the
    group's channels, then scaled and shifted per channel. `groups=1` is
    layer normalisation of an image over its height, width and channels.

    Args:
        **kwargs: those of `keras.layers.GroupNormalization`, with `axis=-1`.

    Example:

    ```python
    norm = tfmeta.layers.GroupNormalization(groups=1)
    y = norm(tf.random.normal((2, 7, 7, 16)))  # each example: mean 0, variance 1
    ```
    """

    def build(self, input_shape):
        if self.axis not in (-1, len(input_shape) - 1):
            raise ValueError(
                "Expected channels last (axis=-1) for tfmeta.layers.GroupNormalization. "
                f"Received: axis={self.axis}"
            )
        super().build(input_shape)

    def call(self, inputs):
        x = tf.cast(inputs, self.compute_dtype)
        channels = x.shape[-1]
        grouped = tf.reshape(
            x, tf.concat([tf.shape(x)[:-1], [self.groups, channels // self.groups]], axis=0))
        axes = [*range(1, x.shape.rank - 1), x.shape.rank]  # positions and the group's channels
        mean = tf.reduce_mean(grouped, axis=axes, keepdims=True)
        centered = grouped - mean
        variance = tf.reduce_mean(tf.square(centered), axis=axes, keepdims=True)
        y = tf.reshape(centered * tf.math.rsqrt(variance + self.epsilon), tf.shape(x))
        if self.scale:
            y = y * tf.cast(self.gamma, y.dtype)
        if self.center:
            y = y + tf.cast(self.beta, y.dtype)
        return y
