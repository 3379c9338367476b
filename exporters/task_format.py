"""The shape of the tasks an exported model adapts to: N-way K-shot, inputs, labels.

An export fixes the support set (`ways * shots` examples for classification,
`shots` for regression) and the per-example input shape; queries may come in
any number (SavedModel) or in a number fixed at export (TFLite).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta.exporters import adaptation_plan
from tfmeta.learners.base import MetaLearner


@dataclasses.dataclass(frozen=True)
class TaskFormat:
    """Exported task shape.

    Attributes:
        ways: classes per task; None for regression.
        shots: support examples per class (per task for regression).
        input_shape: per-example input shape.
        target_shape: per-example target shape: `()` (class ids) for
            classification, the model's per-example output shape for regression.
        outputs_shape: per-example shape of the predictions.
    """

    ways: int | None
    shots: int
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    outputs_shape: tuple[int, ...]

    @property
    def classification(self) -> bool:
        return self.ways is not None

    @property
    def support_size(self) -> int:
        return self.shots * (self.ways or 1)

    @property
    def target_dtype(self) -> tf.DType:
        return tf.int32 if self.classification else tf.float32

    def inputs_spec(self, count: int | None) -> tf.TensorSpec:
        return tf.TensorSpec([count, *self.input_shape], tf.float32)

    def targets_spec(self, count: int | None) -> tf.TensorSpec:
        return tf.TensorSpec([count, *self.target_shape], self.target_dtype)

    def example_episode(self, query_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """A deterministic, valid episode: normal inputs, every class `shots` times."""
        rng = np.random.default_rng(seed)
        support = rng.standard_normal((self.support_size, *self.input_shape)).astype(np.float32)
        query = rng.standard_normal((query_size, *self.input_shape)).astype(np.float32)
        if self.classification:
            labels = (np.arange(self.support_size) % self.ways).astype(np.int32)
        else:
            labels = rng.standard_normal((self.support_size, *self.target_shape))
            labels = labels.astype(np.float32)
        return {"support_x": support, "support_y": labels, "query_x": query}

    def to_json(self) -> dict[str, Any]:
        return {
            "ways": self.ways,
            "shots": self.shots,
            "support_size": self.support_size,
            "input_shape": list(self.input_shape),
            "input_dtype": "float32",
            "target_shape": list(self.target_shape),
            "target_dtype": self.target_dtype.name,
            "outputs_shape": list(self.outputs_shape),
            "task": "classification" if self.classification else "regression",
        }


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Expected `{name}` to be an integer >= 1. Received: {name}={value!r}")
    return int(value)


def task_format(learner: MetaLearner, ways: int | None, shots: int) -> TaskFormat:
    """The task format of `learner` adapting to `ways`-way `shots`-shot tasks.

    Args:
        learner: a compiled tfmeta learner.
        ways: classes per task, or None for regression (float targets shaped
            like the model's outputs).
        shots: support examples per class (per task for regression).

    Raises:
        ValueError: for non-positive sizes, a non-float32 model, or a
            classifier whose outputs are not `ways` logits.
    """
    shots = _positive_int("shots", shots)
    if ways is not None:
        ways = _positive_int("ways", ways)
    if adaptation_plan.is_neural_process(learner):
        return _neural_process_format(learner, ways, shots)
    model = learner.model
    input_shape = tuple(model.inputs[0].shape[1:]) if hasattr(model, "inputs") else None
    if not input_shape or None in input_shape:
        raise ValueError(
            "Expected a model with a fully defined per-example input shape, e.g. built from "
            f"`keras.Input((28, 28, 1))`. Received: input shape {input_shape}"
        )
    if model.inputs[0].dtype != "float32":
        raise ValueError(
            f"Expected float32 model inputs. Received: dtype={model.inputs[0].dtype}"
        )
    outputs_shape = tuple(model.outputs[0].shape[1:])
    if not adaptation_plan.predicts_with_model(learner):
        learner_ways = getattr(learner, "ways", None)
        if ways is None or (learner_ways is not None and learner_ways != ways):
            raise ValueError(
                f"Expected `ways` (an integer, equal to the learner's `ways` when set) for "
                f"{type(learner).__name__}, which predicts one score per class. "
                f"Received: ways={ways!r}, learner.ways={learner_ways!r}"
            )
        return TaskFormat(ways, shots, tuple(input_shape), (), (ways,))
    if ways is None:
        target_shape = outputs_shape
    else:
        target_shape = ()
        if outputs_shape != (ways,):
            raise ValueError(
                f"Expected the model to output {ways} logits per example for {ways}-way "
                f"tasks. Received: model output shape {outputs_shape}"
            )
    return TaskFormat(ways, shots, tuple(input_shape), tuple(target_shape), outputs_shape)


def _neural_process_format(learner: MetaLearner, ways: int | None, shots: int) -> TaskFormat:
    """A CNP's regression tasks: `[x_dim]` inputs, `[y_dim]` targets, `[y_dim, 2]` predictions."""
    if ways is not None:
        raise ValueError(
            "Expected ways=None for ConditionalNeuralProcess (regression: `shots` context "
            f"points per task). Received: ways={ways!r}"
        )
    for role, model in (("encoder", learner.encoder), ("decoder", learner.decoder)):
        if model.inputs[0].dtype != "float32":
            raise ValueError(
                f"Expected float32 {role} inputs. Received: dtype={model.inputs[0].dtype}"
            )
    return TaskFormat(None, shots, (learner.x_dim,), (learner.y_dim,), (learner.y_dim, 2))
