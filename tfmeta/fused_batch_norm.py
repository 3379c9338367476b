"""TF's fused BatchNorm kernel for a model's Keras `BatchNormalization` layers, where it is exact.

Keras 3 normalises with separate ops (moments, then scale and shift), and
autodiff through them adds a dozen element-wise passes over every activation.
TF's fused kernel (`FusedBatchNormV3`) does each direction in one pass:
first-order meta-training on protocol P ran 10-26% faster in paired runs
(`benchmarks/throughput.py --learners=fomaml,fomaml_keras_batch_norm`).

The kernel cannot serve everywhere: the gradient TF registers for its
gradient is wrong (second-order MAML meta-gradients through it differ from
Keras's by 8-50% in float64 checks), and its batch-statistics outputs carry no
gradient. Learners therefore enable it only while tracing computations where
BatchNorm is differentiated at most once and no loss reads the updated moving
statistics (see `MetaLearner._fused_batch_norm_is_exact`), and, inside
second-order meta-training, for the query pass alone (`fused_query_pass`):
4-6% more second-order tasks/s on protocol P in paired runs
(`benchmarks/throughput.py --learners=maml_exact_query_pass,maml`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import keras
import tensorflow as tf

_FUSED_DTYPES = (tf.float16, tf.bfloat16, tf.float32)  # normalised in float32, as Keras does
_MIN_EPSILON = 1.001e-5  # cuDNN's floor for the fused kernel on GPU


@contextlib.contextmanager
def fused_batch_norm(model: keras.Model) -> Iterator[None]:
    """While active, `model`'s BatchNorm layers run TF's fused kernel in training mode.

    Only layers of exactly Keras's `BatchNormalization` (a subclass may
    override its computation) with a configuration the kernel supports are
    switched: 4-D channels-last inputs, float32 or narrower, no renorm, no synchronized
    statistics, `epsilon >= 1.001e-5`. Each call with other inputs (a mask,
    inference mode, another rank or dtype) runs Keras's own computation. The
    forward values equal Keras's to float32 round-off, and so do the moving
    statistics (the kernel's unbiased batch variance is rescaled to Keras's
    biased one).

    The switch is per layer instance and undone on exit, so other models, and
    this one outside the block, are untouched. Use it around the tracing of a
    `tf.function`: the traced graph keeps the kernel.
    """
    layers = [layer for layer in model._flatten_layers() if _is_switchable(layer)]
    with _switched(layers):
        yield


@contextlib.contextmanager
def fused_query_pass(model: keras.Model) -> Iterator[None]:
    """While active, `model`'s BatchNorm layers run TF's fused kernel, inside an exact step too.

    For a forward pass that is differentiated once within a step that needs
    exact second derivatives elsewhere: the query pass of second-order
    meta-training when the queries are normalised with their own batch
    statistics. The meta-gradient differentiates the support passes twice
    (through the inner step) but the query pass once, so the kernel, exact to
    first order, serves it; the query set is most of a task's images.

    Unlike `fused_batch_norm`, it also switches layers whose computation is
    already switched by `query_statistics.batch_statistics(model)` over whole
    batches (the exact second-order path), and restores it on exit; calls
    the kernel does not cover run that computation. Not for a switch that
    normalises with other rows' statistics (`"support"` mode).
    """
    layers = [
        layer for layer in model._flatten_layers() if _is_switchable(layer, allow_switched=True)
    ]
    with _switched(layers):
        yield


@contextlib.contextmanager
def _switched(layers: list) -> Iterator[None]:
    """Gives each layer the fused `call` (its current one as the fallback), restored on exit."""
    previous = [vars(layer).get("call") for layer in layers]
    for layer in layers:
        # An instance attribute shadows the class's `call`; Keras calls `self.call`.
        object.__setattr__(layer, "call", _fused_call(layer))
    try:
        yield
    finally:
        for layer, call in zip(layers, previous):
            if call is None:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", call)


def _is_switchable(layer: keras.layers.Layer, allow_switched: bool = False) -> bool:
    return (
        type(layer) is keras.layers.BatchNormalization
        and (allow_switched or "call" not in vars(layer))
        and not layer.renorm
        and not layer.synchronized
        and layer.epsilon >= _MIN_EPSILON
    )


def _fused_call(layer: keras.layers.BatchNormalization):
    keras_call = layer.call

    def call(inputs, training=None, mask=None):
        inputs = tf.convert_to_tensor(inputs)
        rank = inputs.shape.rank
        if (
            not (training and layer.trainable)
            or mask is not None
            or rank != 4
            or layer.axis not in (-1, 3)
            or inputs.dtype not in _FUSED_DTYPES
        ):
            return keras_call(inputs, training=training, mask=mask)
        inputs = tf.cast(inputs, tf.float32)
        channels = inputs.shape[-1]
        scale = layer.gamma.value if layer.scale else tf.ones([channels], inputs.dtype)
        offset = layer.beta.value if layer.center else tf.zeros([channels], inputs.dtype)
        empty = tf.constant([], inputs.dtype)
        outputs, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=scale,
            offset=offset,
            mean=empty,
            variance=empty,
            epsilon=layer.epsilon,
            is_training=True,
        )
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), inputs.dtype)
        variance = unbiased_variance * (count - 1.0) / tf.maximum(count, 1.0)
        momentum = layer.momentum
        layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
        layer.moving_variance.assign(
            layer.moving_variance * momentum + variance * (1.0 - momentum)
        )
        return tf.cast(outputs, layer.compute_dtype)

    return call
