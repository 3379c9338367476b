"""ANIL (Raghu et al. 2020): MAML whose inner loop adapts only the head."""

from __future__ import annotations

from typing import Sequence

import keras

from tfmeta import adaptation
from tfmeta.learners import maml


@keras.saving.register_keras_serializable(package="tfmeta")
class ANIL(maml.MAML):
    """ANIL, "Almost No Inner Loop": only the head adapts to a task.

    The inner loop updates the weights of the head layers and leaves the body
    (feature extractor) as meta-learned; the outer loop meta-learns both,
    differentiating through the head's inner loop as MAML does. Cheaper than
    MAML and, per Raghu et al., as accurate: MAML's benefit comes from
    feature reuse.

    Args:
        model: a built Keras model whose last layers form the head.
        head_layers: names of the layers (direct children of `model`, as in
            `model.layers`) whose trainable weights adapt. Default: the last
            layer that has trainable weights (the final `Dense` of
            `tfmeta.models.conv4`, named `"head"`).
        **kwargs: the `MAML` arguments (`inner_learning_rate`, `inner_steps`,
            `first_order`, the MAML++ options, ...) and `keras.Model`
            arguments. Learned inner learning rates exist for the head only.

    Example:

    ```python
    import keras, tfmeta
    net = tfmeta.models.conv4((28, 28, 1), num_classes=5)
    anil = tfmeta.ANIL(net, head_layers=["head"], inner_learning_rate=0.4, inner_steps=1)
    anil.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
    sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    anil.fit(sources["train"].episodes(ways=5, shots=1, queries=15, meta_batch_size=32, seed=0),
             steps_per_epoch=1000)
    ```
    """

    def __init__(self, model: keras.Model, head_layers: Sequence[str] | None = None, **kwargs):
        adaptation.check_built(model)
        names, indices = _head(model, head_layers)
        self._head_indices = indices  # read by MAML.__init__ (learned rates of the head)
        super().__init__(model, **kwargs)
        self.head_layers = names

    @property
    def adapted_indices(self) -> list[int]:
        """Indices into `model.trainable_variables` of the head's weights."""
        return list(self._head_indices)

    def _fused_batch_norm_is_exact(self, training: bool) -> bool:
        # The inner loop differentiates the head only, so BatchNorm before the head is
        # differentiated once by the meta-gradient, as in first order: exact unless a
        # BatchNorm layer sits in or after the head (`model.layers` order, conservative).
        return super()._fused_batch_norm_is_exact(training) or not self._normalises_in_head()

    def _normalises_in_head(self) -> bool:
        """Whether a BatchNorm layer is at or after the first head layer in `model.layers`."""
        layers = self.model.layers
        first = min(i for i, layer in enumerate(layers) if layer.name in self.head_layers)
        return any(
            isinstance(inner, keras.layers.BatchNormalization)
            for layer in layers[first:]
            for inner in layer._flatten_layers()
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(head_layers=list(self.head_layers))
        return config


def _head(model: keras.Model, head_layers: Sequence[str] | None) -> tuple[list[str], list[int]]:
    """The head's layer names and the indices of its weights among the trainable ones."""
    with_weights = [layer for layer in model.layers if layer.trainable_weights]
    if head_layers is None:
        head_layers = [with_weights[-1].name]
    elif isinstance(head_layers, str) or not head_layers:
        raise ValueError(
            "Expected `head_layers` as a non-empty list of layer names. "
            f"Received: head_layers={head_layers!r}"
        )
    valid = [layer.name for layer in with_weights]
    unknown = [name for name in head_layers if name not in valid]
    if unknown:
        raise ValueError(
            f"Expected `head_layers` among the layers of '{model.name}' with trainable weights: "
            f"{valid}. Received unknown: {unknown}"
        )
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    indices = sorted(
        position[id(v)] for name in head_layers for v in model.get_layer(name).trainable_weights
    )
    if len(indices) == len(model.trainable_variables):
        raise ValueError(
            "Expected a head smaller than the whole model (use MAML to adapt everything). "
            f"Received: head_layers={list(head_layers)} hold every trainable weight"
        )
    return list(head_layers), indices
