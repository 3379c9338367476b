"""Layer ops whose backward pass converts to TFLite builtin ops only.

TensorFlow's own gradients of several layers are ops that LiteRT can only run
with the Flex (Select TF ops) delegate: `ReluGrad`, `TanhGrad`,
`Conv2DBackpropFilter`, `MaxPoolGrad`, `BiasAddGrad`,
`SparseSoftmaxCrossEntropyWithLogits`, ... Each op here is a
`tf.custom_gradient` whose forward is the usual op and whose backward is
written with builtin ops (multiplies, sums, matmuls, convolutions, pads,
slices, reshapes). They need static shapes, as TFLite signatures have.

The convolution's filter gradient is a sum over kernel taps of
`matmul(patch^T, dy)`. The shorter trick of one convolution over
batch<->channel-transposed tensors converts too, but LiteRT then computes
wrong adapted weights whenever the gradient is not itself a signature
output; do not use it.

No op here is differentiable twice: on the device, adaptation needs first
derivatives only.
"""

from __future__ import annotations

import math

import tensorflow as tf


def _static_shape(x: tf.Tensor, what: str) -> list[int]:
    shape = x.shape
    if not shape.is_fully_defined():
        raise ValueError(
            f"Expected a static shape for the input of `{what}` (TFLite signatures "
            f"need static shapes). Received: shape={shape}"
        )
    return shape.as_list()


def _sum_all_but_last(x: tf.Tensor) -> tf.Tensor:
    """Sums over every axis but the last, one axis at a time.

    LiteRT's reductions accumulate in sequence; summing a conv activation's
    `batch * height * width` values at once loses digits that TensorFlow
    keeps, enough to flip a max-pooling window's argmax. Axis by axis, each
    reduction adds few terms.
    """
    for axis in reversed(range(x.shape.rank - 1)):
        x = tf.reduce_sum(x, axis=axis)
    return x


# ------------------------------------------------------------- activations
@tf.custom_gradient
def relu(x: tf.Tensor) -> tf.Tensor:
    """ReLU; backward is `dy * (y > 0)` (TensorFlow's ReluGrad also reads the output `y`)."""
    y = tf.nn.relu(x)

    def grad(dy):
        return dy * tf.cast(y > 0, dy.dtype)

    return y, grad


@tf.custom_gradient
def tanh(x: tf.Tensor) -> tf.Tensor:
    """tanh; backward is `dy * (1 - y^2)`."""
    y = tf.tanh(x)

    def grad(dy):
        return dy * (1.0 - y * y)

    return y, grad


@tf.custom_gradient
def sigmoid(x: tf.Tensor) -> tf.Tensor:
    """Logistic sigmoid; backward is `dy * y * (1 - y)`."""
    y = tf.sigmoid(x)

    def grad(dy):
        return dy * y * (1.0 - y)

    return y, grad


def broadcast_rows(vector: tf.Tensor, rows: int) -> tf.Tensor:
    """`vector` `[n]` repeated as `rows` rows `[rows, n]`; backward sums the rows.

    (TensorFlow's gradient of a broadcast reads the shapes with
    `BroadcastGradientArgs`, which LiteRT lacks.)
    """

    @tf.custom_gradient
    def repeat(vector):
        def grad(dy):
            return tf.reduce_sum(dy, axis=0)

        return tf.tile(vector[None], [rows, 1]), grad

    return repeat(vector)


# ----------------------------------------------------------- dense, conv
@tf.custom_gradient
def dense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """`x @ kernel + bias` for a rank-2 `x`; backward with matmuls and a sum."""

    def grad(dy):
        return (
            tf.matmul(dy, kernel, transpose_b=True),
            tf.matmul(x, dy, transpose_a=True),
            tf.reduce_sum(dy, axis=0),
        )

    return tf.matmul(x, kernel) + bias, grad


def _conv_geometry(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """`(output_size, pad_before, pad_after)` of one spatial axis, as TensorFlow pads."""
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    return (size - kernel) // stride + 1, 0, 0


def _pad_or_crop(x: tf.Tensor, axis: int, before: int, after: int) -> tf.Tensor:
    """Pads axis `axis` of a rank-4 `x` with zeros (positive amounts) or crops it (negative)."""
    if before < 0 or after < 0:
        size = x.shape[axis]
        begin = [0, 0, 0, 0]
        length = list(x.shape)
        begin[axis] = max(-before, 0)
        length[axis] = size - max(-before, 0) - max(-after, 0)
        x = tf.slice(x, begin, length)
        before, after = max(before, 0), max(after, 0)
    if before or after:
        paddings = [[0, 0]] * 4
        paddings[axis] = [before, after]
        x = tf.pad(x, paddings)
    return x


def _upsample_with_zeros(dy: tf.Tensor, stride_h: int, stride_w: int) -> tf.Tensor:
    """Places `dy[:, i, j]` at `[:, i * stride_h, j * stride_w]`, zeros elsewhere."""
    # One axis at a time, in rank 4: LiteRT's PAD takes at most 5 dimensions.
    batch, height, width, channels = dy.shape
    if stride_h > 1:
        dy = tf.reshape(dy, [batch * height, 1, width, channels])
        dy = tf.pad(dy, [[0, 0], [0, stride_h - 1], [0, 0], [0, 0]])
        height *= stride_h
        dy = tf.reshape(dy, [batch, height, width, channels])
    if stride_w > 1:
        dy = tf.reshape(dy, [batch * height, width, 1, channels])
        dy = tf.pad(dy, [[0, 0], [0, 0], [0, stride_w - 1], [0, 0]])
        dy = tf.reshape(dy, [batch, height, width * stride_w, channels])
    return dy


def conv2d(
    x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, strides: tuple[int, int], padding: str
) -> tf.Tensor:
    """A 2D convolution (NHWC, no dilation) plus bias, with a builtin-only backward.

    Args:
        x: `[batch, height, width, in_channels]`, static shape.
        kernel: `[kh, kw, in_channels, out_channels]`.
        bias: `[out_channels]`.
        strides: `(stride_h, stride_w)`.
        padding: `"SAME"` or `"VALID"`.
    """
    batch, height, width, _ = _static_shape(x, "conv2d")
    kh, kw, _, out_channels = _static_shape(kernel, "conv2d")
    sh, sw = strides
    out_h, top, bottom = _conv_geometry(height, kh, sh, padding)
    out_w, left, right = _conv_geometry(width, kw, sw, padding)

    @tf.custom_gradient
    def conv(x, kernel, bias):
        y = tf.nn.conv2d(x, kernel, strides=[1, sh, sw, 1], padding=padding) + bias

        def grad(dy):
            # Input gradient: a stride-1 VALID convolution of the zero-upsampled,
            # shifted dy with the spatially flipped, in/out-transposed kernel.
            spread = _upsample_with_zeros(dy, sh, sw)
            spread = _pad_or_crop(spread, 1, kh - 1 - top, height + top - out_h * sh)
            spread = _pad_or_crop(spread, 2, kw - 1 - left, width + left - out_w * sw)
            flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])
            dx = tf.nn.conv2d(spread, flipped, strides=[1, 1, 1, 1], padding="VALID")

            # Filter gradient: per kernel tap, matmul(patch^T, dy).
            padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
            rows = tf.reshape(dy, [batch * out_h * out_w, out_channels])
            taps = []
            for i in range(kh):
                for j in range(kw):
                    patch = padded[
                        :, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :
                    ]
                    patch = tf.reshape(patch, [batch * out_h * out_w, -1])
                    taps.append(tf.matmul(patch, rows, transpose_a=True))
            dkernel = tf.reshape(tf.stack(taps), kernel.shape)
            return dx, dkernel, _sum_all_but_last(dy)

        return y, grad

    return conv(x, kernel, bias)


# ------------------------------------------------------ normalization, pooling
def moments(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and (biased) variance over all axes but the last, summed axis by axis."""
    shape = _static_shape(x, "moments")
    count = 1
    for size in shape[:-1]:
        count *= size
    mean = _sum_all_but_last(x) * (1.0 / count)
    centered = x - mean
    return mean, _sum_all_but_last(centered * centered) * (1.0 / count)


@tf.custom_gradient
def inverse_sqrt(x: tf.Tensor) -> tf.Tensor:
    """`1 / sqrt(x)`; backward `-y^3 / 2` (TF's `RsqrtGrad` has no builtin version)."""
    y = tf.math.rsqrt(x)

    def grad(dy):
        return dy * (-0.5) * y * y * y

    return y, grad


def pooled_batch_norm(x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor,
                      alpha: tf.Tensor | float, gamma: tf.Tensor, beta: tf.Tensor,
                      epsilon: float) -> tf.Tensor:
    """BatchNorm of NHWC `x` with per-channel context moments pooled with each example's own
    spatial moments (weights `alpha` and `1 - alpha`, per channel or one for all).

    TF's own gradients of these ops are builtin ops once shapes are static
    (the inverse square root aside), so the inner loop differentiates them directly.
    """
    _, height, width, _ = _static_shape(x, "pooled_batch_norm")
    own_mean = tf.reduce_sum(tf.reduce_sum(x, 2, keepdims=True), 1, keepdims=True) * (
        1.0 / (height * width))
    centered = x - own_mean
    own_variance = tf.reduce_sum(tf.reduce_sum(centered * centered, 2, keepdims=True), 1,
                                 keepdims=True) * (1.0 / (height * width))
    pooled_mean = alpha * mean + (1.0 - alpha) * own_mean
    pooled_variance = (alpha * (variance + tf.square(mean - pooled_mean))
                       + (1.0 - alpha) * (own_variance + tf.square(own_mean - pooled_mean)))
    return (x - pooled_mean) * inverse_sqrt(pooled_variance + epsilon) * gamma + beta


def group_norm(x: tf.Tensor, groups: int, gamma: tf.Tensor, beta: tf.Tensor,
               epsilon: float) -> tf.Tensor:
    """`keras.layers.GroupNormalization` on channels-last `x`: each example's channels in
    `groups` groups, each normalised with its own moments over the example's positions and
    the group's channels (one group: "layer" normalisation of an image).

    Sums run axis by axis like `moments`; TF's gradients of these ops are builtin ops once
    shapes are static, the inverse square root aside.
    """
    shape = _static_shape(x, "group_norm")
    channels = shape[-1]
    grouped = tf.reshape(x, [*shape[:-1], groups, channels // groups])
    axes = [axis for axis in range(1, len(shape) + 1) if axis != len(shape) - 1]
    count = 1
    for axis in axes:
        count *= grouped.shape[axis]

    def per_group_sum(t):
        for axis in reversed(axes):
            t = tf.reduce_sum(t, axis=axis, keepdims=True)
        return t

    mean = per_group_sum(grouped) * (1.0 / count)
    centered = grouped - mean
    variance = per_group_sum(centered * centered) * (1.0 / count)
    normalized = tf.reshape(centered * inverse_sqrt(variance + epsilon), shape)
    return normalized * gamma + beta


def batch_norm_train(
    x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """BatchNorm over all axes but the last, with the statistics of the batch.

    Returns:
        `(y, mean, variance)`; `mean` and `variance` (biased) feed the moving
        statistics and are not differentiated.
    """
    shape = _static_shape(x, "batch_norm_train")
    count = 1
    for size in shape[:-1]:
        count *= size

    @tf.custom_gradient
    def norm(x, gamma, beta):
        mean = _sum_all_but_last(x) * (1.0 / count)
        centered = x - mean
        variance = _sum_all_but_last(centered * centered) * (1.0 / count)
        inv_std = tf.math.rsqrt(variance + epsilon)
        normalized = centered * inv_std
        y = normalized * gamma + beta

        def grad(dy, unused_dmean, unused_dvariance):
            dnormalized = dy * gamma
            sum_dn = _sum_all_but_last(dnormalized)
            sum_dn_n = _sum_all_but_last(dnormalized * normalized)
            dx = (inv_std / count) * (count * dnormalized - sum_dn - normalized * sum_dn_n)
            return dx, _sum_all_but_last(dy * normalized), _sum_all_but_last(dy)

        return (y, mean, variance), grad

    y, mean, variance = norm(x, gamma, beta)
    return y, tf.stop_gradient(mean), tf.stop_gradient(variance)


def global_average_pool(x: tf.Tensor) -> tf.Tensor:
    """Mean over the spatial axes of an NHWC tensor; backward spreads `dy / (H * W)`."""
    _, height, width, _ = _static_shape(x, "global_average_pool")

    @tf.custom_gradient
    def pool(x):
        def grad(dy):
            return dy[:, None, None, :] * tf.ones_like(x) * (1.0 / (height * width))

        return tf.reduce_mean(x, axis=[1, 2]), grad

    return pool(x)


def max_pool(x: tf.Tensor, pool_size: tuple[int, int]) -> tf.Tensor:
    """Non-overlapping max pooling (strides == pool size, VALID padding).

    Backward: `dy` upsampled over each window times the mask of the window's
    maxima (ties share the gradient, where TensorFlow picks one; after a ReLU
    the only likely ties are zeros, whose gradient the ReLU stops); rows and
    columns that VALID padding drops get zero gradient. Like any max-pooling
    gradient it jumps where a window holds two nearly equal values, so the
    forward pass must match TensorFlow closely (see `_sum_all_but_last`).
    """
    batch, height, width, channels = _static_shape(x, "max_pool")
    ph, pw = pool_size
    out_h, out_w = height // ph, width // pw

    @tf.custom_gradient
    def pool(x):
        y = tf.nn.max_pool2d(x, [ph, pw], [ph, pw], "VALID")

        def grad(dy):
            windows = tf.reshape(
                x[:, : out_h * ph, : out_w * pw, :], [batch, out_h, ph, out_w, pw, channels]
            )
            maxima = tf.reshape(y, [batch, out_h, 1, out_w, 1, channels])
            mask = tf.cast(tf.equal(windows, maxima), dy.dtype)
            spread = mask * tf.reshape(dy, [batch, out_h, 1, out_w, 1, channels])
            dx = tf.reshape(spread, [batch, out_h * ph, out_w * pw, channels])
            return tf.pad(dx, [[0, 0], [0, height - out_h * ph], [0, width - out_w * pw], [0, 0]])

        return y, grad

    return pool(x)


# ------------------------------------------------------------------ losses
def sparse_softmax_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy of integer `labels` `[batch]` and `logits` `[batch, classes]`.

    Forward `-mean(sum(one_hot * log_softmax))`; backward `(softmax - one_hot) / batch`.
    """
    batch, classes = _static_shape(logits, "sparse_softmax_cross_entropy")
    one_hot = tf.one_hot(labels, classes, dtype=logits.dtype)

    @tf.custom_gradient
    def loss(logits):
        log_probs = tf.nn.log_softmax(logits)

        def grad(dloss):
            return dloss * (tf.exp(log_probs) - one_hot) * (1.0 / batch)

        return -tf.reduce_sum(one_hot * log_probs) * (1.0 / batch), grad

    return loss(logits)


def mean_squared_error(targets: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
    """Mean of `(predictions - targets)^2` over all elements; backward `2 * diff / n`."""
    count = 1
    for size in _static_shape(predictions, "mean_squared_error"):
        count *= size
    targets = tf.reshape(tf.cast(targets, predictions.dtype), predictions.shape)

    @tf.custom_gradient
    def loss(predictions):
        diff = predictions - targets

        def grad(dloss):
            return dloss * diff * (2.0 / count)

        return tf.reduce_sum(diff * diff) * (1.0 / count), grad

    return loss(predictions)


# ------------------------------------------------------ action log-densities
def gaussian_log_prob(params: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """Log-density of `actions` `[n, A]` under diagonal Gaussians `params` `[n, 2A]`
    (mean, log-std), as `tfmeta.rl.distributions.DiagonalGaussian.log_prob`; returns `[n]`.

    Backward w.r.t. `params`: `z / std` for the mean and `z^2 - 1` for the
    log-std, `z = (a - mean) / std` (TensorFlow's gradient of the slices that
    split `params` is `StridedSliceGrad`, which LiteRT lacks).
    """
    _, width = _static_shape(params, "gaussian_log_prob")
    action_dim = width // 2
    actions = tf.cast(actions, params.dtype)

    @tf.custom_gradient
    def log_prob(params):
        mean, log_std = params[:, :action_dim], params[:, action_dim:]
        inverse_std = tf.exp(-log_std)
        z = (actions - mean) * inverse_std
        value = -tf.reduce_sum(
            0.5 * tf.square(z) + log_std + 0.5 * math.log(2.0 * math.pi), axis=-1
        )

        def grad(dy):
            return dy[:, None] * tf.concat([z * inverse_std, tf.square(z) - 1.0], axis=-1)

        return value, grad

    return log_prob(params)


def categorical_log_prob(logits: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """Log-probability of integer `actions` `[n]` under `logits` `[n, K]`, as
    `tfmeta.rl.distributions.Categorical.log_prob`; returns `[n]`.

    Backward w.r.t. `logits`: `one_hot - softmax`.
    """
    _, classes = _static_shape(logits, "categorical_log_prob")
    one_hot = tf.one_hot(actions, classes, dtype=logits.dtype)

    @tf.custom_gradient
    def log_prob(logits):
        log_probs = tf.nn.log_softmax(logits)

        def grad(dy):
            return dy[:, None] * (one_hot - tf.exp(log_probs))

        return tf.reduce_sum(one_hot * log_probs, axis=-1), grad

    return log_prob(logits)
