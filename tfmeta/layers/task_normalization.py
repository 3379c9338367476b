"""TaskNorm-I (Bronskill et al. 2020): BatchNorm whose moments blend a context set's with the
example's own.

In few-shot learning the statistics a BatchNorm layer can use for a query
without looking at the other queries are those of the support set: 5
images in 5-way 1-shot. TaskNorm-I normalises every example with a blend
of those context moments and the example's own spatial (instance) moments,
weighted by a learned `alpha = sigmoid(blend_scale * n + blend_offset)` per
channel, `n` the number of context examples, so the network learns how much
to trust a small context set. A prediction still depends only on the
context set, the weights and the example itself.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfmeta")
class TaskNormalization(keras.layers.BatchNormalization):
    """`BatchNormalization` with TaskNorm-I moments: context moments blended with each example's.

    In training mode the context is the batch (its moments also move the
    moving statistics, as in BatchNorm); in inference mode it is the moving
    statistics, standing for `context_size` examples (the size of the last
    batch that moved them). With `query_statistics="support"`, tfmeta's
    learners make the support set the context of every example of a task,
    queries included (`tfmeta.query_statistics`).

    Needs inputs with spatial axes (an example's own moments are taken over
    them): rank 3 or more, channels on `axis`.

    Args:
        blend_offset_initializer: initial `blend_offset` (`blend_scale`
            starts at zero, so `alpha` starts at `sigmoid(offset)` for every
            context size).
        **kwargs: those of `keras.layers.BatchNormalization` (no renorm,
            no synchronized statistics).
    """

    def __init__(self, blend_offset_initializer: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if self.renorm or self.synchronized:
            raise ValueError(
                "Expected TaskNormalization without renorm or synchronized statistics. "
                f"Received: renorm={self.renorm}, synchronized={self.synchronized}"
            )
        self.blend_offset_initializer = float(blend_offset_initializer)

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(
                "Expected inputs with spatial axes (rank 3 or more) for TaskNormalization, "
                "which blends each example's own spatial moments in. Received: input_shape="
                f"{tuple(input_shape)}; use keras.layers.BatchNormalization for this layer"
            )
        super().build(input_shape)
        channels = (input_shape[self.axis],)
        self.blend_scale = self.add_weight(shape=channels, initializer="zeros",
                                           name="blend_scale")
        self.blend_offset = self.add_weight(
            shape=channels, initializer=keras.initializers.Constant(self.blend_offset_initializer),
            name="blend_offset")
        self.context_size = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                            name="context_size")

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            raise ValueError(
                f"Expected no mask in TaskNormalization '{self.name}'. Received a mask")
        inputs = tf.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        if training and self.trainable:
            mean, variance = batch_moments(inputs, self.axis)
            count = tf.cast(tf.shape(inputs)[0], inputs.dtype)
            self.move_statistics(mean, variance, count, self.momentum)
        else:
            mean = tf.cast(self.moving_mean, inputs.dtype)
            variance = tf.cast(self.moving_variance, inputs.dtype)
            count = tf.cast(self.context_size, inputs.dtype)
        return tf.cast(self.normalise(inputs, mean, variance, count), self.compute_dtype)

    def alpha(self, count: tf.Tensor) -> tf.Tensor:
        """The per-channel weight of the context moments for a context of `count` examples."""
        scale = tf.cast(self.blend_scale, count.dtype)
        offset = tf.cast(self.blend_offset, count.dtype)
        return tf.sigmoid(scale * count + offset)

    def move_statistics(self, mean: tf.Tensor, variance: tf.Tensor, count: tf.Tensor,
                        momentum: float) -> None:
        """Moves the moving statistics towards a context's moments; records its size."""
        self.moving_mean.assign(
            tf.cast(self.moving_mean, mean.dtype) * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(
            tf.cast(self.moving_variance, variance.dtype) * momentum
            + variance * (1.0 - momentum))
        self.context_size.assign(tf.cast(count, self.context_size.dtype))

    def normalise(self, inputs: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor,
                  count: tf.Tensor) -> tf.Tensor:
        """`inputs` normalised with context moments `(mean, variance)` of `count` examples
        blended with each example's own, then scaled and shifted."""
        gamma = tf.cast(self.gamma, inputs.dtype) if self.scale else None
        beta = tf.cast(self.beta, inputs.dtype) if self.center else None
        return normalise_pooled(inputs, mean, variance, self.alpha(count), self.axis, gamma,
                                beta, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "blend_offset_initializer": self.blend_offset_initializer}


def batch_moments(inputs: tf.Tensor, axis: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-channel mean and biased variance over every axis but `axis`.

    Computed as `mean(x)` and `mean((x - mean(x))^2)` rather than with
    `tf.nn.moments`, which stops the gradient through the mean inside the
    variance and so breaks second derivatives (second-order MAML).
    """
    rank = inputs.shape.rank
    axis = axis % rank
    reduction_axes = [i for i in range(rank) if i != axis]
    mean = tf.reduce_mean(inputs, axis=reduction_axes)
    variance = tf.reduce_mean(tf.square(inputs - broadcastable(mean, rank, axis)),
                              axis=reduction_axes)
    return mean, variance


def normalise_pooled(inputs: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor,
                     alpha: tf.Tensor | float, axis: int, gamma: tf.Tensor | None,
                     beta: tf.Tensor | None, epsilon: float) -> tf.Tensor:
    """BatchNorm of `inputs` with per-channel context moments `(mean, variance)` pooled with
    each example's own spatial moments (weights `alpha` and `1 - alpha`), then `gamma`, `beta`.

    `mean`, `variance`, `alpha`, `gamma` and `beta` are per channel (or scalars).
    """
    rank = inputs.shape.rank
    axis = axis % rank
    mean, variance = _pooled_with_instance(
        inputs, broadcastable(mean, rank, axis), broadcastable(variance, rank, axis),
        broadcastable(alpha, rank, axis), axis)
    outputs = (inputs - mean) * tf.math.rsqrt(variance + epsilon)
    if gamma is not None:
        outputs *= broadcastable(gamma, rank, axis)
    if beta is not None:
        outputs += broadcastable(beta, rank, axis)
    return outputs


def _pooled_with_instance(inputs: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor,
                          alpha: tf.Tensor, axis: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Each example's moments: context `(mean, variance)` with weight `alpha`, its own spatial
    moments with `1 - alpha` (the moments of the mixture of the two populations), shaped to
    broadcast against `inputs`."""
    spatial_axes = [i for i in range(1, inputs.shape.rank) if i != axis]
    instance_mean = tf.reduce_mean(inputs, axis=spatial_axes, keepdims=True)
    instance_variance = tf.reduce_mean(tf.square(inputs - instance_mean), axis=spatial_axes,
                                       keepdims=True)
    pooled_mean = alpha * mean + (1.0 - alpha) * instance_mean
    pooled_variance = (alpha * (variance + tf.square(mean - pooled_mean))
                       + (1.0 - alpha) * (instance_variance
                                          + tf.square(instance_mean - pooled_mean)))
    return pooled_mean, pooled_variance


def broadcastable(statistic: tf.Tensor | float, rank: int, axis: int) -> tf.Tensor:
    """A per-channel statistic (or a scalar) reshaped to broadcast against a rank-`rank` input."""
    statistic = tf.convert_to_tensor(statistic)
    if statistic.shape.rank == 0:
        return statistic
    shape = [1] * rank
    shape[axis] = -1
    return tf.reshape(statistic, shape)
