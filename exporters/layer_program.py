"""A Keras model re-expressed with the builtin-gradient ops of `builtin_grads`.

`LayerProgram` reads a built Keras model made of a chain of supported layers
and runs the same computation with substituted weights, like Keras 3's
`stateless_call`, so that TFLite adaptation signatures convert with builtin
ops only. Weights stay in the model's own order
(`model.trainable_variables`, `model.non_trainable_variables`), so the
library's inner loop (`tfmeta.adaptation.adapt`) runs on a program exactly as
on the model.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfmeta.exporters import builtin_grads

_ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "linear": lambda x: x,
    "relu": builtin_grads.relu,
    "tanh": builtin_grads.tanh,
    "sigmoid": builtin_grads.sigmoid,
}
SUPPORTED_LAYERS = (
    "InputLayer",
    "Dense",
    "Conv2D",
    "BatchNormalization",
    "TaskNormalization",
    "GroupNormalization",
    "ReLU",
    "Activation",
    "GlobalAveragePooling2D",
    "MaxPooling2D",
    "Flatten",
    "GaussianHead",
)


class UnsupportedModelError(ValueError):
    """The model uses a layer, option or topology the TFLite exporter cannot express."""


def _unsupported(layer: keras.layers.Layer, detail: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"Layer '{layer.name}' ({type(layer).__name__}) cannot be exported to TFLite with "
        f"on-device adaptation: {detail}. Supported layers: {', '.join(SUPPORTED_LAYERS)} "
        "(float32, channels_last, a single chain of layers)."
    )


def _activation(layer: keras.layers.Layer, activation) -> Callable[[tf.Tensor], tf.Tensor]:
    name = getattr(activation, "__name__", repr(activation))
    if name not in _ACTIVATIONS:
        raise _unsupported(
            layer, f"expected an activation in {sorted(_ACTIVATIONS)}, received '{name}'"
        )
    return _ACTIVATIONS[name]


class _WeightIndex:
    """Finds where a layer variable sits in the model's trainable / non-trainable lists."""

    def __init__(self, model: keras.Model):
        self._trainable = {id(v): i for i, v in enumerate(model.trainable_variables)}
        self._non_trainable = {id(v): i for i, v in enumerate(model.non_trainable_variables)}

    def reader(self, variable) -> Callable[[list, list], tf.Tensor]:
        if id(variable) in self._trainable:
            index = self._trainable[id(variable)]
            return lambda params, state: params[index]
        index = self._non_trainable[id(variable)]
        return lambda params, state: state[index]

    def state_index(self, variable) -> int | None:
        """The position of `variable` in the non-trainable list (None if trainable)."""
        return self._non_trainable.get(id(variable))


@dataclasses.dataclass(frozen=True)
class Statistics:
    """How BatchNorm layers normalise in one call (see `tfmeta.query_statistics`).

    Attributes:
        batch: use batch statistics whatever `training` says.
        rows: take them from the first `rows` rows only (the support set).
        replace_moving: store them as the moving statistics (momentum 0).
        with_instance: pool each example's own spatial moments into its
            statistics (`"support_instance"`): in batch mode with the batch
            (or `rows`) moments, in inference mode with the moving ones,
            which then hold a support set's moments of `context_size` examples.
        context_size: that support size (inference mode with `with_instance`).
    """

    batch: bool = False
    rows: int | None = None
    replace_moving: bool = False
    with_instance: bool = False
    context_size: int | None = None


class _Step:
    """One layer: `apply(params, state, x, training, updates, statistics) -> x`.

    `updates` collects new non-trainable values by state index (BatchNorm statistics).
    """

    param_indices: frozenset = frozenset()  # the trainable weights the layer reads

    def apply(self, params, state, x, training, updates, statistics):
        raise NotImplementedError


class _Dense(_Step):
    def __init__(self, layer, weights: _WeightIndex):
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            raise _unsupported(layer, "LoRA and quantized Dense layers are not supported")
        self.kernel = weights.reader(layer.kernel)
        self.bias = weights.reader(layer.bias) if layer.use_bias else None
        self.units = layer.units
        self.activation = _activation(layer, layer.activation)

    def apply(self, params, state, x, training, updates, statistics):
        leading = x.shape[:-1]
        x2d = tf.reshape(x, [-1, x.shape[-1]]) if x.shape.rank != 2 else x
        bias = self.bias(params, state) if self.bias else tf.zeros([self.units], x.dtype)
        y = builtin_grads.dense(x2d, self.kernel(params, state), bias)
        if x.shape.rank != 2:
            y = tf.reshape(y, [*leading, self.units])
        return self.activation(y)


class _Conv2D(_Step):
    def __init__(self, layer, weights: _WeightIndex):
        if layer.data_format != "channels_last":
            raise _unsupported(layer, "expected data_format='channels_last'")
        if tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
            raise _unsupported(layer, "expected dilation_rate=1 and groups=1")
        if layer.padding not in ("same", "valid"):
            raise _unsupported(
                layer, f"expected padding 'same' or 'valid', received '{layer.padding}'"
            )
        self.kernel = weights.reader(layer.kernel)
        self.bias = weights.reader(layer.bias) if layer.use_bias else None
        self.filters = layer.filters
        self.strides = tuple(layer.strides)
        self.padding = layer.padding.upper()
        self.activation = _activation(layer, layer.activation)

    def apply(self, params, state, x, training, updates, statistics):
        bias = self.bias(params, state) if self.bias else tf.zeros([self.filters], x.dtype)
        y = builtin_grads.conv2d(x, self.kernel(params, state), bias, self.strides, self.padding)
        return self.activation(y)


class _Normalization(_Step):
    """A normalisation layer's learned per-channel scale and offset (`scale`, `center`)."""

    def __init__(self, layer, weights: _WeightIndex):
        self.gamma = weights.reader(layer.gamma) if layer.scale else None
        self.beta = weights.reader(layer.beta) if layer.center else None

    def _scale_and_offset(self, params, state, x) -> tuple[tf.Tensor, tf.Tensor]:
        """`(gamma, beta)`, ones and zeros for a layer without them."""
        channels = x.shape[-1]
        gamma = self.gamma(params, state) if self.gamma else tf.ones([channels], x.dtype)
        beta = self.beta(params, state) if self.beta else tf.zeros([channels], x.dtype)
        return gamma, beta


class _BatchNormalization(_Normalization):
    def __init__(self, layer, weights: _WeightIndex, rank: int):
        if layer.axis not in (-1, rank - 1) or getattr(layer, "renorm", False):
            raise _unsupported(layer, "expected axis=-1 and renorm=False")
        super().__init__(layer, weights)
        self.moving_mean = weights.reader(layer.moving_mean)
        self.moving_variance = weights.reader(layer.moving_variance)
        self.mean_index = weights.state_index(layer.moving_mean)
        self.variance_index = weights.state_index(layer.moving_variance)
        self.trainable = layer.trainable
        self.momentum = layer.momentum
        self.epsilon = layer.epsilon

    def apply(self, params, state, x, training, updates, statistics):
        gamma, beta = self._scale_and_offset(params, state, x)
        moving_mean = self.moving_mean(params, state)
        moving_variance = self.moving_variance(params, state)
        pooled = statistics.with_instance and x.shape.rank == 4 and self.trainable
        if self._uses_moving_statistics(training, statistics):
            if pooled:
                return builtin_grads.pooled_batch_norm(
                    x, moving_mean, moving_variance, _pooling_weight(statistics.context_size),
                    gamma, beta, self.epsilon)
            scale = gamma * tf.math.rsqrt(moving_variance + self.epsilon)
            return x * scale + (beta - moving_mean * scale)
        sample = x if statistics.rows is None else x[: statistics.rows]
        if pooled:
            mean, variance = builtin_grads.moments(sample)
            y = builtin_grads.pooled_batch_norm(x, mean, variance,
                                                _pooling_weight(sample.shape[0]), gamma, beta,
                                                self.epsilon)
        elif statistics.rows is None:
            y, mean, variance = builtin_grads.batch_norm_train(x, gamma, beta, self.epsilon)
        else:  # statistics of the support rows for every row; forward only
            mean, variance = builtin_grads.moments(sample)
            scale = gamma * tf.math.rsqrt(variance + self.epsilon)
            y = x * scale + (beta - mean * scale)
        self._move_statistics(params, state, updates, mean, variance, statistics)
        return y

    def _uses_moving_statistics(self, training, statistics: Statistics) -> bool:
        return not self.trainable or not (training or statistics.batch)

    def _move_statistics(self, params, state, updates, mean, variance,
                         statistics: Statistics) -> None:
        """Records the moving statistics moved towards batch moments (set, `replace_moving`)."""
        momentum = 0.0 if statistics.replace_moving else self.momentum
        updates[self.mean_index] = self.moving_mean(params, state) * momentum + tf.stop_gradient(
            mean) * (1.0 - momentum)
        updates[self.variance_index] = self.moving_variance(
            params, state) * momentum + tf.stop_gradient(variance) * (1.0 - momentum)


def _pooling_weight(count: int) -> float:
    """The support moments' weight when an example's own are pooled in (`"support_instance"`)."""
    return count / (count + 1.0)


class _TaskNormalization(_BatchNormalization):
    """`tfmeta.layers.TaskNormalization`: the context's moments (the batch's, or the support
    rows', or in inference mode the moving ones of `context_size` examples) pooled with each
    example's own by the learned `alpha = sigmoid(blend_scale * n + blend_offset)`."""

    def __init__(self, layer, weights: _WeightIndex, rank: int):
        if rank != 4:
            raise _unsupported(layer, "expected NHWC inputs")
        super().__init__(layer, weights, rank)
        self.blend_scale = weights.reader(layer.blend_scale)
        self.blend_offset = weights.reader(layer.blend_offset)
        self.context_size = weights.reader(layer.context_size)
        self.context_index = weights.state_index(layer.context_size)

    def apply(self, params, state, x, training, updates, statistics):
        gamma, beta = self._scale_and_offset(params, state, x)
        if self._uses_moving_statistics(training, statistics):
            mean = self.moving_mean(params, state)
            variance = self.moving_variance(params, state)
            count = self.context_size(params, state)
        else:
            sample = x if statistics.rows is None else x[: statistics.rows]
            mean, variance = builtin_grads.moments(sample)
            count = tf.constant(float(sample.shape[0]), x.dtype)
            self._move_statistics(params, state, updates, mean, variance, statistics)
            updates[self.context_index] = count
        alpha = builtin_grads.sigmoid(
            self.blend_scale(params, state) * count + self.blend_offset(params, state))
        return builtin_grads.pooled_batch_norm(x, mean, variance, alpha, gamma, beta,
                                               self.epsilon)


class _GroupNormalization(_Normalization):
    """`keras.layers.GroupNormalization`: per-example statistics, so no state to move."""

    def __init__(self, layer, weights: _WeightIndex, rank: int):
        if layer.axis not in (-1, rank - 1):
            raise _unsupported(layer, "expected axis=-1")
        super().__init__(layer, weights)
        self.groups = layer.groups
        self.epsilon = layer.epsilon

    def apply(self, params, state, x, training, updates, statistics):
        gamma, beta = self._scale_and_offset(params, state, x)
        return builtin_grads.group_norm(x, self.groups, gamma, beta, self.epsilon)


class _Activation(_Step):
    def __init__(self, layer, function):
        self.function = function

    def apply(self, params, state, x, training, updates, statistics):
        return self.function(x)


class _GlobalAveragePooling2D(_Step):
    def __init__(self, layer):
        if layer.data_format != "channels_last" or layer.keepdims:
            raise _unsupported(layer, "expected data_format='channels_last' and keepdims=False")

    def apply(self, params, state, x, training, updates, statistics):
        return builtin_grads.global_average_pool(x)


class _MaxPooling2D(_Step):
    def __init__(self, layer):
        if (
            layer.data_format != "channels_last"
            or layer.padding != "valid"
            or tuple(layer.strides) != tuple(layer.pool_size)
        ):
            raise _unsupported(
                layer, "expected channels_last, padding='valid' and strides equal to pool_size"
            )
        self.pool_size = tuple(layer.pool_size)

    def apply(self, params, state, x, training, updates, statistics):
        return builtin_grads.max_pool(x, self.pool_size)


class _Flatten(_Step):
    def apply(self, params, state, x, training, updates, statistics):
        return tf.reshape(x, [x.shape[0], int(np.prod(x.shape[1:]))])


class _GaussianHead(_Step):
    """`tfmeta.rl.GaussianHead`: a linear mean and the learned log-std, repeated per row."""

    def __init__(self, layer, weights: _WeightIndex):
        self.mean = _Dense(layer.mean, weights)
        self.log_std = weights.reader(layer.log_std)

    def apply(self, params, state, x, training, updates, statistics):
        mean = self.mean.apply(params, state, x, training, updates, statistics)
        log_std = builtin_grads.broadcast_rows(self.log_std(params, state), mean.shape[0])
        return tf.concat([mean, log_std], axis=-1)


def _step_for(layer: keras.layers.Layer, weights: _WeightIndex, rank: int) -> _Step | None:
    kind = type(layer).__name__
    if kind == "InputLayer":
        return None
    if kind == "Dense":
        return _Dense(layer, weights)
    if kind == "Conv2D":
        return _Conv2D(layer, weights)
    if kind == "BatchNormalization":
        return _BatchNormalization(layer, weights, rank)
    if kind == "TaskNormalization":
        return _TaskNormalization(layer, weights, rank)
    if kind == "GroupNormalization":
        return _GroupNormalization(layer, weights, rank)
    if kind == "ReLU":
        if layer.max_value is not None or layer.negative_slope or layer.threshold:
            raise _unsupported(layer, "expected max_value=None, negative_slope=0, threshold=0")
        return _Activation(layer, builtin_grads.relu)
    if kind == "Activation":
        return _Activation(layer, _activation(layer, layer.activation))
    if kind == "GlobalAveragePooling2D":
        return _GlobalAveragePooling2D(layer)
    if kind == "MaxPooling2D":
        return _MaxPooling2D(layer)
    if kind == "Flatten":
        return _Flatten()
    if kind == "GaussianHead":
        return _GaussianHead(layer, weights)
    raise _unsupported(layer, "no builtin-gradient version of this layer")


def _chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers in order; raises unless they form one chain."""
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError(
            "Expected a model with one input and one output for TFLite export. "
            f"Received: {len(model.inputs)} inputs, {len(model.outputs)} outputs"
        )
    chain = []
    tensor = model.outputs[0]
    while tensor is not model.inputs[0]:
        layer, node_index, _ = tensor._keras_history  # noqa: SLF001
        inputs = layer._inbound_nodes[node_index].arguments.keras_tensors  # noqa: SLF001
        if len(inputs) != 1:
            raise UnsupportedModelError(
                "Expected a chain of layers, each with one input, for TFLite export. "
                f"Received: layer '{layer.name}' with {len(inputs)} inputs"
            )
        chain.append(layer)
        tensor = inputs[0]
    layers = chain[::-1]
    if len(layers) != len([x for x in model.layers if not isinstance(x, keras.layers.InputLayer)]):
        raise UnsupportedModelError(
            "Expected every layer of the model on its single input-to-output chain for "
            f"TFLite export. Received: chain {[x.name for x in layers]}"
        )
    return layers


class LayerProgram:
    """Runs a chain of supported Keras layers with substituted weights.

    `stateless_call(trainable, non_trainable, inputs, training)` mirrors Keras
    3's method of the same name (returns `(outputs, new_non_trainable)`), with
    a backward pass made of TFLite builtin ops.

    Args:
        model: a built, float32, single-chain Keras model whose layers are in
            `SUPPORTED_LAYERS`.

    Raises:
        UnsupportedModelError: naming the first layer or option that is not
            supported, and listing the supported layers.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        weights = _WeightIndex(model)
        position = {id(v): i for i, v in enumerate(model.trainable_variables)}
        rank = len(model.inputs[0].shape)
        self.steps = []
        for layer in _chain(model):
            step = _step_for(layer, weights, rank)
            if step is not None:
                step.param_indices = frozenset(
                    position[id(v)] for v in layer.trainable_weights if id(v) in position
                )
                self.steps.append(step)
            if not isinstance(layer, keras.layers.InputLayer):
                rank = len(layer.output.shape)
        dtypes = {v.dtype for v in model.variables} | {model.inputs[0].dtype}
        if dtypes != {"float32"}:
            raise UnsupportedModelError(
                f"Expected a float32 model for TFLite export. Received dtypes: {sorted(dtypes)}"
            )

    def stateless_call(
        self,
        trainable: list,
        non_trainable: list,
        inputs: tf.Tensor,
        training: bool = False,
        statistics: Statistics = Statistics(),
    ) -> tuple[tf.Tensor, list]:
        """The model's outputs on `inputs` with the given weights, and the updated state."""
        return self.run(trainable, non_trainable, inputs, training, statistics)

    def run(self, trainable: list, non_trainable: list, inputs: tf.Tensor, training: bool,
            statistics: Statistics, start: int = 0, stop: int | None = None
            ) -> tuple[tf.Tensor, list]:
        """`stateless_call` over the layers `steps[start:stop]` only."""
        updates: dict[int, tf.Tensor] = {}
        x = inputs
        for step in self.steps[start:stop]:
            x = step.apply(trainable, non_trainable, x, training, updates, statistics)
        state = [updates.get(i, value) for i, value in enumerate(non_trainable)]
        return x, state

    def first_step_reading(self, indices) -> int:
        """The position of the first layer that reads any of the trainable weights `indices`."""
        indices = set(indices)
        return next(i for i, step in enumerate(self.steps) if step.param_indices & indices)

    def segment(self, start: int = 0, stop: int | None = None,
                statistics: Statistics | None = None) -> "Segment":
        """The layers `steps[start:stop]` as a model of their own (same weight lists), whose
        calls normalise with `statistics` unless told otherwise."""
        return Segment(self, start, stop, statistics)

    def check_matches_model(self, batch_size: int, atol: float = 1e-4, seed: int = 0) -> None:
        """Compares the program with the Keras model on random inputs, in both modes.

        Raises:
            UnsupportedModelError: if outputs or updated state differ by more than `atol`
                (relative to the output scale), e.g. for a subclassed layer with a
                different `call`.
        """
        shape = [batch_size, *self.model.inputs[0].shape[1:]]
        inputs = tf.random.stateless_normal(shape, seed=[seed, 0])
        params = [v.value for v in self.model.trainable_variables]
        state = [v.value for v in self.model.non_trainable_variables]
        for training in (False, True):
            expected, expected_state = self.model.stateless_call(
                params, state, inputs, training=training
            )
            received, received_state = self.stateless_call(params, state, inputs, training)
            pairs = [(expected, received), *zip(expected_state, received_state)]
            for want, got in pairs:
                scale = 1.0 + float(tf.reduce_max(tf.abs(want)))
                error = float(tf.reduce_max(tf.abs(want - got)))
                if error > atol * scale:
                    raise UnsupportedModelError(
                        "Expected the TFLite forward pass to match the Keras model. Received: "
                        f"max abs difference {error:.3g} (training={training}); a layer may "
                        f"subclass a supported one with a different computation"
                    )


class Segment:
    """Consecutive layers of a `LayerProgram`, with the program's `stateless_call` interface.

    Weights are still the whole model's lists, so the inner loop
    (`tfmeta.adaptation`) runs on a segment (e.g. the head that adapts, fed
    features the rest computed once) exactly as on the whole model.
    """

    def __init__(self, program: LayerProgram, start: int, stop: int | None,
                 statistics: Statistics | None = None):
        self._program, self._start, self._stop = program, start, stop
        self._statistics = statistics or Statistics()

    def stateless_call(self, trainable: list, non_trainable: list, inputs: tf.Tensor,
                       training: bool = False, statistics: Statistics | None = None
                       ) -> tuple[tf.Tensor, list]:
        return self._program.run(trainable, non_trainable, inputs, training,
                                 statistics or self._statistics, self._start, self._stop)
