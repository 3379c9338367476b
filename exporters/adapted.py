"""SavedModel export of a model adapted to one task, as a plain predictor.

The learner adapts to the task's support set once, at export; the
SavedModel's `serving_default(inputs) -> outputs` then predicts with the
adapted weights (gradient learners) or the task's prototypes (Prototypical
Networks), like the learner predicts that task's queries; `metadata() -> json`
describes it. Served from the same atomic TF Serving layout as
`export_saved_model`.

Queries are predicted in the mode the learner uses for queries: with
`transductive=True`, BatchNorm normalizes each request with its own batch
statistics. A transductive ProtoNet embeds support and queries in one batch;
here the support set is embedded alone, at export.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfmeta.exporters import adaptation_plan, metadata, request_checks, saved_model
from tfmeta.exporters import serving_layout
from tfmeta.exporters.task_format import TaskFormat, task_format
from tfmeta.learners.base import MetaLearner


def _flatten(x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(x, [tf.shape(x)[0], -1])


def adapted_predictor(
    learner: MetaLearner, support_x: tf.Tensor, support_y: tf.Tensor
) -> tuple[list[tf.Variable], Callable[[tf.Tensor], tf.Tensor]]:
    """Adapts `learner` to one support set.

    Returns:
        `(variables, predict)`: the adapted state as `tf.Variable`s and
        `predict(inputs) -> outputs`, which reads them.

    Raises:
        ValueError: for learners whose adapted state has no export (FineTune).
    """
    model = learner.model
    if adaptation_plan.predicts_with_model(learner):
        params, state = learner.adapt(support_x, support_y)
        params = [tf.Variable(p, name=f"adapted_{i}") for i, p in enumerate(params)]
        state = [tf.Variable(s, name=f"state_{i}") for i, s in enumerate(state)]

        def predict(inputs):
            outputs, _ = model.stateless_call(
                [p.read_value() for p in params], [s.read_value() for s in state], inputs,
                training=learner.transductive,
            )
            return outputs

        return params + state, predict
    if adaptation_plan.is_metric_learner(learner):
        embeddings = _flatten(model(support_x, training=learner.transductive))
        prototypes = tf.Variable(learner.prototypes(embeddings, support_y), name="prototypes")

        def predict(inputs):
            queries = _flatten(model(inputs, training=learner.transductive))
            differences = queries[:, tf.newaxis, :] - prototypes[tf.newaxis, :, :]
            return -tf.reduce_sum(tf.square(differences), axis=-1)

        return [prototypes], predict
    raise ValueError(
        "Expected a learner whose adaptation to one task can be exported: a GradientLearner "
        f"(MAML, MetaSGD, ANIL, Reptile) or ProtoNet. Received: {type(learner).__name__}"
    )


def _task_of(learner: MetaLearner, support_x: np.ndarray, support_y: np.ndarray) -> TaskFormat:
    """The task format the support set implies (ways from the labels for classification)."""
    if np.issubdtype(support_y.dtype, np.integer):
        ways = int(support_y.max()) + 1 if support_y.size else 0
        shots = len(support_y) // max(ways, 1)
        if ways < 1 or shots * ways != len(support_y):
            raise ValueError(
                "Expected `support_y` with `shots` examples of each class 0..N-1. Received: "
                f"{len(support_y)} labels with classes 0..{ways - 1}"
            )
        return task_format(learner, ways, shots)
    return task_format(learner, None, len(support_y))


def write_adapted(
    learner: MetaLearner,
    support_x: Any,
    support_y: Any,
    directory: str | os.PathLike,
    warmup_model_name: str | None = "tfmeta",
) -> dict[str, Any]:
    """Writes the adapted predictor into `directory` (no versioning); returns its metadata."""
    learner = adaptation_plan.check_learner(learner)
    support_x = np.asarray(support_x, np.float32)
    support_y = np.asarray(support_y)
    task = _task_of(learner, support_x, support_y)
    if support_x.shape != (task.support_size, *task.input_shape):
        raise ValueError(
            f"Expected `support_x` of shape {(task.support_size, *task.input_shape)}. "
            f"Received: support_x.shape={support_x.shape}"
        )
    variables, predict = adapted_predictor(
        learner, tf.constant(support_x), tf.constant(support_y.astype(task.target_dtype.name))
    )
    inputs = [-1, *task.input_shape]
    info = metadata.export_metadata(learner, task, fmt="saved_model_adapted", extra={
        "signatures": {
            saved_model.SERVING_DEFAULT: {
                "inputs": {"inputs": saved_model.describe_input(inputs, tf.float32)},
                "outputs": ["outputs"],
            },
            saved_model.METADATA: {"inputs": {}, "outputs": ["json"]},
        },
    })
    metadata_json = json.dumps(info)

    @tf.function(input_signature=[
        saved_model.open_spec(1 + len(task.input_shape), tf.float32, "inputs")
    ])
    def serving_default(inputs):
        inputs = request_checks.checked_inputs(inputs, "inputs", None, task.input_shape)
        return {"outputs": predict(inputs)}

    @tf.function(input_signature=[])
    def metadata_fn():
        return {"json": tf.constant(metadata_json)}

    directory = os.fspath(directory)
    saved_model.save(
        directory,
        {saved_model.SERVING_DEFAULT: serving_default, saved_model.METADATA: metadata_fn},
        variables,
    )
    example = task.example_episode(saved_model.WARMUP_QUERIES)["query_x"]
    saved_model.write_assets_extra(
        directory, info,
        {saved_model.SERVING_DEFAULT: {"inputs": example}, saved_model.METADATA: {}},
        warmup_model_name,
    )
    return info


def export_adapted(
    learner: MetaLearner,
    support_x: Any,
    support_y: Any,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    overwrite: bool = False,
    warmup: bool = True,
) -> str:
    """Adapts the learner to one task and exports the result for TF Serving.

    Args:
        learner: a compiled `GradientLearner` (MAML, MetaSGD, ANIL, Reptile)
            or `ProtoNet`.
        support_x: `[S, *input_shape]` support inputs of the task.
        support_y: `[S]` int class ids `0..N-1` (each `S / N` times), or
            `[S, *output_shape]` float targets for regression.
        base_dir: the model base directory TF Serving watches.
        version: the version number (>= 1); default: the next free one.
        overwrite: replace an existing version (otherwise FileExistsError).
        warmup: write `assets.extra/tf_serving_warmup_requests`.

    Returns:
        The version directory.

    Example:

    ```python
    path = tfmeta.exporters.export_adapted(maml, support_x, support_y, "models/my_task")
    ```
    """
    base_dir = os.fspath(base_dir)
    model_name = os.path.basename(os.path.normpath(base_dir)) if warmup else None

    def write(directory: str) -> None:
        write_adapted(learner, support_x, support_y, directory, warmup_model_name=model_name)

    return serving_layout.write_version(base_dir, write, version=version, overwrite=overwrite)
