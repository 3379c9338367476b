"""A relation module's first layer applied to a class and an example apart, before pairing.

A relation module scores `concat(class, example)` for every (class, example)
pair. When its first layer is a `Conv2D` or `Dense` on that concatenation,
the layer is linear in its input: with its kernel split into the class half
`K_c` and the example half `K_e`,

    layer(concat(c, e)) = activation(op(c, K_c) + op(e, K_e) + bias)

exactly (zero padding pads each half alike). So the first layer runs once per
class and once per example, not once per pair; only the sum is formed per
pair, and the rest of the module runs on it. With the paper's module on 5x5
Omniglot maps the first convolution is nine tenths of the module's work, and
a 20-way 1-shot episode with 10 queries per class pairs its 220 embeddings
with 20 classes: 4,400 pairs.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfmeta import adaptation


@dataclasses.dataclass(frozen=True)
class SplitRelationModule:
    """A relation module as its first layer (split by halves) and the rest (`tail`).

    Attributes:
        first: the module's first layer, a `Conv2D` or `Dense` on the pair.
        tail: a Keras model sharing the module's other layers, from the first
            layer's output to the score.
        kernel_index, bias_index: positions of the first layer's kernel and
            bias (None without one) in the module's trainable variables.
        tail_indices: positions of the tail's trainable variables there.
    """

    first: keras.layers.Layer
    tail: keras.Model
    kernel_index: int
    bias_index: int | None
    tail_indices: tuple[int, ...]

    @classmethod
    def of(cls, module: keras.Model) -> SplitRelationModule | None:
        """The split of `module`, or None when its first layer is not one that splits.

        That layer must be a plain, trainable, channels-last `Conv2D` (one
        group) or `Dense`, called once, on the module's input and nothing else
        reading that input; the module's state must all be the tail's, in order.
        """
        first = _first_layer(module)
        if first is None:
            return None
        try:
            tail = keras.Model(first.output, module.outputs[0], name=f"{module.name}_tail")
        except ValueError:  # the input feeds other layers too: no tail without the first layer
            return None
        trainable = [id(v) for v in module.trainable_variables]
        first_ids = [id(first.kernel)] + ([id(first.bias)] if first.use_bias else [])
        tail_ids = [id(v) for v in tail.trainable_variables]
        state_ids = [id(v) for v in module.non_trainable_variables]
        if (sorted(first_ids + tail_ids) != sorted(trainable)
                or [id(v) for v in tail.non_trainable_variables] != state_ids):
            return None
        return cls(
            first=first,
            tail=tail,
            kernel_index=trainable.index(first_ids[0]),
            bias_index=trainable.index(first_ids[1]) if first.use_bias else None,
            tail_indices=tuple(trainable.index(i) for i in tail_ids),
        )

    def paired(
        self, classes: tf.Tensor, params: adaptation.Weights, *examples: tf.Tensor
    ) -> list[tf.Tensor]:
        """The first layer's outputs on every (class, example) pair, for each of `examples`.

        The class half runs once for all of them. In each result `[E * N, ...]`,
        row `e * N + n` is the layer on class `n` concatenated with example `e`
        (`tfmeta.learners.relation_network.pairs`'s order).

        Args:
            classes: class embeddings `[N, ..., C]`.
            params: values of the module's trainable variables.
            *examples: example embeddings, each `[E, ..., C]` (support, queries).
        """
        dtype = self.first.compute_dtype
        kernel = tf.cast(params[self.kernel_index], dtype)
        channels = tf.shape(classes)[-1]
        of_classes = self._apply(tf.cast(classes, dtype), kernel[..., :channels, :])
        if self.bias_index is not None:
            of_classes += tf.cast(params[self.bias_index], dtype)
        results = []
        for batch in examples:
            of_examples = self._apply(tf.cast(batch, dtype), kernel[..., channels:, :])
            summed = of_examples[:, tf.newaxis] + of_classes[tf.newaxis]
            summed = tf.reshape(summed, tf.concat([[-1], tf.shape(summed)[2:]], 0))
            results.append(self.first.activation(summed))
        return results

    def tail_params(self, params: adaptation.Weights) -> adaptation.Weights:
        """The tail's trainable values, picked from the module's."""
        return [params[i] for i in self.tail_indices]

    def _apply(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        if isinstance(self.first, keras.layers.Conv2D):
            return self.first.convolution_op(inputs, kernel)
        return tf.tensordot(inputs, kernel, axes=1)


def _first_layer(module: keras.Model) -> keras.layers.Layer | None:
    """The module's only layer reading its input, if it is a Conv2D or Dense that splits."""
    if not module.inputs or len(module.inputs) != 1:
        return None
    readers = [layer for layer in module.layers
               if not isinstance(layer, keras.layers.InputLayer)
               and any(node.input_tensors and node.input_tensors[0] is module.inputs[0]
                       for node in layer._inbound_nodes)]
    if len(readers) != 1:
        return None
    first = readers[0]
    if type(first) not in (keras.layers.Conv2D, keras.layers.Dense):
        return None
    if len(first._inbound_nodes) != 1 or not first.trainable:
        return None
    if getattr(first, "lora_enabled", False) or first.quantization_mode is not None:
        return None
    if isinstance(first, keras.layers.Conv2D) and (
            first.groups != 1 or first.data_format != "channels_last"):
        return None
    return first
