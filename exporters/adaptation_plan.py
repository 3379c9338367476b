"""What an exported model needs to know about a learner's adaptation, as constants.

The SavedModel runs a learner's own `adapt_and_predict` in the graph; it
needs from here only the description (`describe`) and the learner's kind.
The TFLite model re-expresses adaptation with builtin ops, so it reads:

- for gradient learners (MAML, Meta-SGD, ANIL, Reptile: `GradientLearner`s)
  a `GradientPlan`: the learning rates of every evaluation step (scalars,
  per-step scalars for MAML++'s LSLR, per-parameter arrays for Meta-SGD),
  which weights adapt (all, or the head for ANIL), the query statistics
  and the task loss;
- for Prototypical Networks, only the query statistics (prototypes are the
  class means of the support embeddings).

`served_query_statistics` decides how an export normalises queries: the
learner's own mode, unless that makes a query's prediction depend on the
other queries of a request (transductive BatchNorm), which an export refuses
unless asked for by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator

import keras
import numpy as np

from tfmeta import query_statistics
from tfmeta.learners.base import MetaLearner
from tfmeta.learners.conditional_neural_process import ConditionalNeuralProcess
from tfmeta.learners.gradient_learner import GradientLearner
from tfmeta.learners.protonet import ProtoNet
from tfmeta.learners.support_set_classifier import SupportSetClassifier

CROSS_ENTROPY = "sparse_categorical_crossentropy_from_logits"
MEAN_SQUARED_ERROR = "mean_squared_error"
SUPPORTED_LOSSES = (
    "keras.losses.SparseCategoricalCrossentropy(from_logits=True)",
    "'mse' / keras.losses.MeanSquaredError()",
)


@dataclasses.dataclass(frozen=True)
class GradientPlan:
    """A gradient learner's evaluation inner loop.

    Attributes:
        learning_rates: per step, per adapted weight: a float, or a float32
            array shaped like the weight.
        adapted: indices into `model.trainable_variables` of the weights that
            adapt.
        query_statistics: how BatchNorm normalises queries (one of
            `tfmeta.query_statistics.MODES`).
        loss: `CROSS_ENTROPY` or `MEAN_SQUARED_ERROR`.
    """

    learning_rates: tuple[tuple[Any, ...], ...]
    adapted: tuple[int, ...]
    query_statistics: str
    loss: str

    @property
    def steps(self) -> int:
        return len(self.learning_rates)

    def stacked_learning_rates(self) -> list[np.ndarray]:
        """Per adapted weight, its rates of all steps stacked: `[steps, *rate_shape]`."""
        return [
            np.stack([np.asarray(step[i], np.float32) for step in self.learning_rates])
            for i in range(len(self.adapted))
        ]


def check_learner(learner: Any) -> MetaLearner:
    """Raises unless `learner` is a compiled tfmeta learner."""
    if not isinstance(learner, MetaLearner):
        raise ValueError(
            "Expected a tfmeta learner (a `tfmeta.MetaLearner` such as `tfmeta.MAML`). "
            f"Received: learner of type {type(learner).__name__}"
        )
    learner.task_loss  # noqa: B018 - raises a clear error when the learner is not compiled
    return learner


def served_query_statistics(learner: MetaLearner, requested: str | None) -> str:
    """The query statistics an export of `learner` uses.

    Args:
        requested: None for the learner's own mode; a mode of
            `tfmeta.query_statistics.MODES` to export in that mode instead.

    Raises:
        ValueError: when `requested` is None and the learner's own mode makes
            a query's prediction depend on the other queries of a request
            (transductive BatchNorm): the message names both ways out.
    """
    if requested is not None and is_neural_process(learner):
        raise ValueError(
            "Expected query_statistics=None for ConditionalNeuralProcess: its encoder sees the "
            "context set only and its decoder each query on its own, so no mode applies. "
            f"Received: query_statistics={requested!r}"
        )
    if requested is not None:
        return query_statistics.check_mode(requested)
    mode = learner.query_statistics
    if query_statistics.depends_on_query_batch(learner.model, mode):
        raise ValueError(
            "Expected a learner whose prediction for one query does not depend on the other "
            f"queries of a request. Received: {type(learner).__name__} with "
            f"query_statistics='{mode}', whose BatchNorm layers normalise each request with "
            "its own batch statistics (a query sent alone is then predicted from itself "
            "only, far below the learner's accuracy). Retrain with "
            "query_statistics='support' (the default) to export it as trained; or pass "
            "query_statistics='support' to the exporter to serve this learner that way "
            "without retraining (some accuracy lost); or query_statistics='transductive' to "
            "export it as it is, for clients that always send whole query batches."
        )
    return mode


@contextlib.contextmanager
def serving_mode(learner: MetaLearner, mode: str) -> Iterator[MetaLearner]:
    """While active (around the tracing of an export), `learner` predicts queries in `mode`."""
    own = learner.query_statistics
    learner.query_statistics = mode
    try:
        yield learner
    finally:
        learner.query_statistics = own


def predicts_with_model(learner: MetaLearner) -> bool:
    """True when the learner's predictions are the wrapped model's outputs (gradient learners)."""
    return isinstance(learner, GradientLearner)


def is_metric_learner(learner: MetaLearner) -> bool:
    """True for learners that classify by distances between embeddings (Prototypical Networks)."""
    return isinstance(learner, ProtoNet)


def has_embedding(learner: MetaLearner) -> bool:
    """True for learners whose wrapped model is an embedding network (Prototypical Networks,
    R2-D2, Matching and Relation Networks): their exports get an `embed` signature."""
    return isinstance(learner, (ProtoNet, SupportSetClassifier))


def is_neural_process(learner: MetaLearner) -> bool:
    """True for Conditional Neural Processes (episodes of `x_dim` inputs and `y_dim` targets,
    predictions of a mean and a standard deviation)."""
    return isinstance(learner, ConditionalNeuralProcess)


def loss_kind(learner: MetaLearner) -> str:
    """`CROSS_ENTROPY` or `MEAN_SQUARED_ERROR` for the learner's compiled loss.

    Raises:
        ValueError: for any other loss, listing the supported ones.
    """
    loss = learner.loss
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        config = loss.get_config()
        if config.get("from_logits") and config.get("ignore_class") is None:
            return CROSS_ENTROPY
    elif isinstance(loss, keras.losses.MeanSquaredError) or (
        getattr(loss, "__name__", None) == "mean_squared_error"
    ):
        return MEAN_SQUARED_ERROR
    raise ValueError(
        f"Expected a task loss with a TFLite builtin-gradient version: one of "
        f"{', '.join(SUPPORTED_LOSSES)}. Received: loss={learner.loss!r}"
    )


def _constant(rate: Any) -> Any:
    """A learning rate as a Python float or a float32 numpy array."""
    value = np.asarray(keras.ops.convert_to_numpy(rate), dtype=np.float32)
    return float(value) if value.ndim == 0 else value


def gradient_plan(learner: MetaLearner) -> GradientPlan:
    """Reads a gradient learner's evaluation inner loop.

    Raises:
        ValueError: if the learner is not a `GradientLearner`, keeps state
            of its own besides the model's weights (MAML++ per-step BatchNorm
            statistics), or starts tasks from a zero head
            (`head_initialization="zeros"`), or adapts with an update rule
            other than plain gradient descent (Reptile's `inner_optimizer="adam"`),
            or on minibatches of the support set (Reptile's `inner_batch_size`).
    """
    if not predicts_with_model(learner):
        raise ValueError(
            "Expected a learner that adapts by gradient descent (a `GradientLearner`: MAML, "
            f"MetaSGD, ANIL, Reptile). Received: {type(learner).__name__}"
        )
    inner_optimizer = getattr(learner, "inner_optimizer", "sgd")
    if inner_optimizer != "sgd":
        raise ValueError(
            "Expected a learner whose inner loop is plain gradient descent "
            "(inner_optimizer='sgd'): the on-device module steps by `lr * grad` and carries no "
            f"optimizer moments. Received: {type(learner).__name__} with "
            f"inner_optimizer={inner_optimizer!r}; use export_saved_model (it runs the "
            "learner's own Adam inner loop), or a learner with inner_optimizer='sgd'"
        )
    batch_sizes = {
        name: getattr(learner, name, None) for name in ("inner_batch_size", "eval_inner_batch_size")
    }
    if any(size is not None for size in batch_sizes.values()):
        received = ", ".join(f"{name}={size}" for name, size in batch_sizes.items())
        raise ValueError(
            "Expected a learner whose inner steps take the whole support set: the on-device "
            f"module draws no minibatches. Received: {type(learner).__name__} with {received}; "
            "use export_saved_model (it runs the learner's own inner loop), or rebuild the "
            "learner without them from its config and weights"
        )
    head_initialization = getattr(learner, "head_initialization", "learned")
    if head_initialization != "learned":
        raise ValueError(
            "Expected a learner whose tasks start from the meta-learned weights "
            "(head_initialization='learned'): the on-device module adapts the model's own "
            f"variables. Received: {type(learner).__name__} with "
            f"head_initialization={head_initialization!r}"
        )
    extra_state = len(learner.state_variables) - len(learner.model.non_trainable_variables)
    if extra_state:
        raise ValueError(
            "Expected a learner whose only state is the wrapped model's non-trainable "
            f"weights. Received: {type(learner).__name__} with {extra_state} state variables "
            "of its own (e.g. per_step_batch_norm_statistics=True)"
        )
    adapted = learner.adapted_indices
    adapted = tuple(range(len(learner.model.trainable_variables)) if adapted is None else adapted)
    rates = tuple(
        tuple(_constant(rate) for rate in step)
        for step in learner.inner_learning_rates(training=False)
    )
    return GradientPlan(
        learning_rates=rates,
        adapted=adapted,
        query_statistics=learner.query_statistics,
        loss=loss_kind(learner),
    )


def describe(learner: MetaLearner) -> dict[str, Any]:
    """The learner's algorithm and evaluation inner loop, JSON-ready, for export metadata."""
    description: dict[str, Any] = {
        "algorithm": type(learner).__name__,
        "query_statistics": learner.query_statistics,
        "query_independent": not query_statistics.depends_on_query_batch(
            learner.model, learner.query_statistics
        ),
    }
    if predicts_with_model(learner):
        rates = learner.inner_learning_rates(training=False)
        values = [np.asarray(keras.ops.convert_to_numpy(r)) for step in rates for r in step]
        uniform = all(v.ndim == 0 for v in values) and len({float(v) for v in values}) == 1
        description["inner_steps"] = len(rates)
        if getattr(learner, "inner_optimizer", "sgd") != "sgd":
            description["inner_optimizer"] = learner.inner_optimizer
        if getattr(learner, "eval_inner_batch_size", None) is not None:
            description["inner_batch_size"] = learner.eval_inner_batch_size
        description["inner_learning_rate"] = (
            float(values[0]) if uniform else "learned (per parameter or per step)"
            if values else None
        )
        if learner.adapted_indices is not None:
            description["adapted_weights"] = [
                learner.model.trainable_variables[i].path for i in learner.adapted_indices
            ]
    elif hasattr(learner, "eval_inner_steps"):
        description["inner_steps"] = learner.eval_inner_steps
        description["inner_learning_rate"] = learner.eval_inner_learning_rate
    return description
