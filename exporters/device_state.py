"""On-device state of a LiteRT export: plain `tf.Variable`s, flat get/set/reset, metadata.

Every on-device module (`tfmeta.exporters.tflite`, `one_pass_devices`) keeps
what adapting to a task changes (weights, prototypes, a representation) as
one flat float32 vector an app can read, store per task and write back, and
guards its inputs with builtin ops (TFLite has no assert ops).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta.exporters.graph_function import graph_function
from tfmeta.exporters.task_format import TaskFormat

COMMON_SIGNATURES = ("get_weights", "set_weights", "reset", "metadata")


def flatten(tensors: list) -> tf.Tensor:
    """The tensors as one flat vector, in order."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def unflatten(flat: tf.Tensor, shapes: list[list[int]]) -> list[tf.Tensor]:
    """The inverse of `flatten` for tensors of `shapes`."""
    tensors, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        tensors.append(tf.reshape(flat[offset : offset + size], shape))
        offset += size
    return tensors


def exact_size(x: tf.Tensor) -> tf.Tensor:
    """`x`, failing in the interpreter unless it has exactly its declared number of elements.

    LiteRT's signature runner resizes an input to whatever array it is given;
    a RESHAPE to `[1, *shape]` (which the converter keeps) then fails instead
    of the graph reading a resized input partially.
    """
    return tf.reshape(x, [1, *x.shape])[0]


def valid_labels(labels: tf.Tensor, ways: int) -> tf.Tensor:
    """Whether the support labels are class ids `0..ways-1` with every class present."""
    in_range = tf.reduce_all((labels >= 0) & (labels < ways))
    present = tf.reduce_sum(tf.one_hot(labels, ways), axis=0)
    return in_range & tf.reduce_all(present > 0)


def nan_unless(valid: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """`x` where `valid`, else NaNs of its shape (how a converted graph reports bad input)."""
    return tf.where(valid, x, tf.fill(tf.shape(x), tf.constant(float("nan"), x.dtype)))


def weights_layout(entries: list[tuple[str, list[int], bool]]) -> list[dict[str, Any]]:
    """Where each `(name, shape, trainable)` entry sits in the flat state vector."""
    layout, offset = [], 0
    for name, shape, trainable in entries:
        size = int(np.prod(shape))
        layout.append({"name": name, "shape": list(shape), "offset": offset, "size": size,
                       "trainable": trainable})
        offset += size
    return layout


class DeviceModule(tf.Module):
    """Device state in plain `tf.Variable`s, flat get/set/reset, and the metadata signature.

    (Keras variables that a signature assigns convert uninitialized.)

    Args:
        initial: the initial state tensors (`reset` restores them).
        task: the exported task format of a classifier or regressor (None
            for a policy, which has no support set).
        query_size: inputs per prediction call.
    """

    def __init__(self, initial: list[np.ndarray], task: TaskFormat | None, query_size: int):
        super().__init__(name="tfmeta_on_device")
        self._initial = initial
        self._shapes = [list(value.shape) for value in initial]
        self._task = task
        self._query_size = query_size
        self.device_state = [tf.Variable(v, name=f"state_{i}") for i, v in enumerate(initial)]
        self.steps_taken = tf.Variable(0, name="steps_taken")  # train_steps since reset
        self.metadata_json = ""

    def _checked_support(self, support_x, support_y):
        """Size-checked support inputs and whether the labels are valid (True for regression)."""
        support_x, support_y = exact_size(support_x), exact_size(support_y)
        if not self._task.classification:
            return support_x, support_y, tf.constant(True)
        return support_x, support_y, valid_labels(support_y, self._task.ways)

    def _assign(self, values: list) -> None:
        for variable, value in zip(self.device_state, values):
            variable.assign(value)

    def _read(self) -> list[tf.Tensor]:
        return [v.read_value() for v in self.device_state]

    def _common_signatures(self) -> dict[str, Any]:
        size = sum(int(np.prod(shape)) for shape in self._shapes)

        @graph_function(input_signature=[])
        def get_weights():
            return {"weights": flatten(self._read())}

        @graph_function(input_signature=[tf.TensorSpec([size], tf.float32)])
        def set_weights(weights):
            self._assign(unflatten(exact_size(weights), self._shapes))
            self.steps_taken.assign(0)
            return {"weights": flatten(self._read())}

        @graph_function(input_signature=[])
        def reset():
            self._assign([tf.constant(v) for v in self._initial])
            self.steps_taken.assign(0)
            return {"weights": flatten(self._read())}

        @graph_function(input_signature=[])
        def metadata_fn():
            return {"json": tf.constant(self.metadata_json)}

        return {"get_weights": get_weights, "set_weights": set_weights, "reset": reset,
                "metadata": metadata_fn}

    def signatures(self) -> dict[str, Any]:
        """The tf.functions to convert, keyed by signature name."""
        raise NotImplementedError

    def layout(self) -> list[dict[str, Any]]:
        """Where each state tensor sits in the flat `get_weights`/`set_weights` vector."""
        raise NotImplementedError
