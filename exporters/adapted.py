"""SavedModel export of a model adapted to one task, as a plain predictor.

The learner adapts to the task's support set once, at export; the
SavedModel's `serving_default(inputs) -> outputs` then predicts with the
adapted weights (gradient learners) or the task's prototypes (Prototypical
Networks), like the learner predicts that task's queries; `metadata() -> json`
describes it. Served from the same atomic TF Serving layout as
`export_saved_model`.

Queries are normalised as the learner normalises them
(`tfmeta.query_statistics`). With `"support"`, the support set's BatchNorm
statistics are computed at export and stored in place of the moving ones, so
each request is predicted in inference mode exactly as the learner predicts
it, whatever else the request holds. A transductive learner is refused
unless the export names a mode (then, with `"transductive"`, each request is
normalised with its own statistics, and ProtoNet's support set is embedded
alone, at export).

With `preprocessing`, `serving_default` takes encoded images
(`predict_images`); `predict_pixels` takes uint8 pixels of any size and
`predict` preprocessed float32 inputs.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfmeta import adaptation, query_statistics
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.exporters import adaptation_plan, image_inputs, metadata, request_checks
from tfmeta.exporters import saved_model, serving_layout
from tfmeta.exporters.graph_function import graph_function
from tfmeta.exporters.task_format import TaskFormat, task_format
from tfmeta.learners.base import MetaLearner


PREDICT = "predict"
PREDICT_IMAGES = "predict_images"
PREDICT_PIXELS = "predict_pixels"


def _flatten(x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(x, [tf.shape(x)[0], -1])


def adapted_predictor(
    learner: MetaLearner, support_x: tf.Tensor, support_y: tf.Tensor
) -> tuple[list[tf.Variable], Callable[[tf.Tensor], tf.Tensor]]:
    """Adapts `learner` to one support set, in its `query_statistics` mode.

    Returns:
        `(variables, predict)`: the adapted state as `tf.Variable`s and
        `predict(inputs) -> outputs`, which reads them.

    Raises:
        ValueError: for learners whose adapted state has no export (FineTune).
    """
    model, mode = learner.model, learner.query_statistics
    if mode == query_statistics.SUPPORT_INSTANCE:
        return _predictor_with_support(learner, support_x, support_y)
    if adaptation_plan.predicts_with_model(learner):
        params, state = learner.adapt(support_x, support_y)
        if mode == query_statistics.SUPPORT:
            state = query_statistics.support_statistics_state(model, params, state, support_x)
        params = [tf.Variable(p, name=f"adapted_{i}") for i, p in enumerate(params)]
        state = [tf.Variable(s, name=f"state_{i}") for i, s in enumerate(state)]

        def predict(inputs):
            with _request_statistics(model, mode):
                outputs, _ = model.stateless_call(
                    [p.read_value() for p in params], [s.read_value() for s in state], inputs,
                    training=False,
                )
            return outputs

        return params + state, predict
    if adaptation_plan.is_metric_learner(learner):
        params, state = adaptation.initial_weights(model)
        if mode == query_statistics.SUPPORT:
            state = query_statistics.support_statistics_state(model, params, state, support_x)
        with _request_statistics(model, mode):
            embeddings, _ = model.stateless_call(params, state, support_x, training=False)
        prototypes = tf.Variable(learner.prototypes(_flatten(embeddings), support_y),
                                 name="prototypes")
        state = [tf.Variable(s, name=f"state_{i}") for i, s in enumerate(state)]

        def predict(inputs):
            with _request_statistics(model, mode):
                queries, _ = model.stateless_call(
                    params, [s.read_value() for s in state], inputs, training=False)
            differences = _flatten(queries)[:, tf.newaxis, :] - prototypes[tf.newaxis, :, :]
            return -tf.reduce_sum(tf.square(differences), axis=-1)

        return [prototypes] + state, predict
    raise ValueError(
        "Expected a learner whose adaptation to one task can be exported: a GradientLearner "
        f"(MAML, MetaSGD, ANIL, Reptile) or ProtoNet. Received: {type(learner).__name__}"
    )


def _predictor_with_support(
    learner: MetaLearner, support_x: tf.Tensor, support_y: tf.Tensor
) -> tuple[list[tf.Variable], Callable[[tf.Tensor], tf.Tensor]]:
    """`adapted_predictor` for modes that normalise each request with the support set itself
    (`"support_instance"` pools each query's own moments with the support's): the adapted
    state and the support inputs are stored, and each request runs the learner's query pass."""
    model, mode = learner.model, learner.query_statistics
    stored_x = tf.Variable(support_x, name="support_x")
    if adaptation_plan.predicts_with_model(learner):
        params, state = learner.adapt(support_x, support_y)
        params = [tf.Variable(p, name=f"adapted_{i}") for i, p in enumerate(params)]
        state = [tf.Variable(s, name=f"state_{i}") for i, s in enumerate(state)]

        def predict(inputs):
            outputs, _ = query_statistics.predict_queries(
                model, [p.read_value() for p in params], [s.read_value() for s in state],
                stored_x.read_value(), inputs, mode=mode, training=False)
            return outputs

        return params + state + [stored_x], predict
    if adaptation_plan.is_metric_learner(learner):
        params, state = adaptation.initial_weights(model)
        support, _, _ = query_statistics.episode_forward(
            model, params, state, support_x, support_x[:1], mode=mode, training=False)
        prototypes = tf.Variable(learner.prototypes(_flatten(support), support_y),
                                 name="prototypes")

        def predict(inputs):
            _, queries, _ = query_statistics.episode_forward(
                model, params, state, stored_x.read_value(), inputs, mode=mode, training=False)
            differences = _flatten(queries)[:, tf.newaxis, :] - prototypes[tf.newaxis, :, :]
            return -tf.reduce_sum(tf.square(differences), axis=-1)

        return [prototypes, stored_x], predict
    raise ValueError(
        "Expected a learner whose adaptation to one task can be exported: a GradientLearner "
        f"(MAML, MetaSGD, ANIL, Reptile) or ProtoNet. Received: {type(learner).__name__}"
    )


def _request_statistics(model, mode: str):
    """Transductive: BatchNorm with each call's own statistics; otherwise inference mode."""
    if mode == query_statistics.TRANSDUCTIVE:
        return query_statistics.batch_statistics(model)
    return contextlib.nullcontext()


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
    preprocessing: ImagePreprocessing | None = None,
    query_statistics_mode: str | None = None,
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
    if preprocessing is not None:
        preprocessing = image_inputs.check_preprocessing(preprocessing, task)
    mode = adaptation_plan.served_query_statistics(learner, query_statistics_mode)
    with adaptation_plan.serving_mode(learner, mode):
        variables, predict = adapted_predictor(
            learner, tf.constant(support_x), tf.constant(support_y.astype(task.target_dtype.name))
        )
        info = metadata.export_metadata(learner, task, fmt="saved_model_adapted", extra={
            "signatures": _describe(task, preprocessing),
            "preprocessing": None if preprocessing is None else preprocessing.to_json(),
        })
    signatures = _signatures(task, predict, json.dumps(info), preprocessing)
    directory = os.fspath(directory)
    saved_model.save(directory, signatures, variables)
    example = task.example_episode(saved_model.WARMUP_QUERIES)["query_x"]
    requests = {PREDICT: {"inputs": example}, saved_model.METADATA: {}}
    if preprocessing is not None:
        pixels = image_inputs.example_images(saved_model.WARMUP_QUERIES, preprocessing)
        requests[PREDICT_IMAGES] = {"images": image_inputs.encode_png(pixels)}
        requests[saved_model.SERVING_DEFAULT] = requests[PREDICT_IMAGES]
        requests[PREDICT_PIXELS] = {"pixels": pixels}
    else:
        requests[saved_model.SERVING_DEFAULT] = requests[PREDICT]
    saved_model.write_assets_extra(directory, info, requests, warmup_model_name)
    return info


def _signatures(task: TaskFormat, predict, metadata_json: str,
                preprocessing: ImagePreprocessing | None) -> dict[str, Any]:
    rank = 1 + len(task.input_shape)

    def outputs_of(inputs):
        outputs = predict(inputs)
        result = {"outputs": outputs}
        if task.classification:
            result["classes"] = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        return result

    def predict_floats(inputs):
        return outputs_of(request_checks.checked_inputs(inputs, "inputs", None, task.input_shape))

    float_spec = [saved_model.open_spec(rank, tf.float32, "inputs")]
    signatures = {PREDICT: graph_function(predict_floats, input_signature=float_spec)}

    @graph_function(input_signature=[])
    def metadata_fn():
        return {"json": tf.constant(metadata_json)}

    signatures[saved_model.METADATA] = metadata_fn
    if preprocessing is None:
        signatures[saved_model.SERVING_DEFAULT] = signatures[PREDICT]
        return signatures

    def predict_images(images):
        return outputs_of(image_inputs.from_encoded(images, preprocessing, "images", None))

    images_spec = [saved_model.open_spec(1, tf.string, "images")]
    signatures[PREDICT_IMAGES] = graph_function(predict_images, input_signature=images_spec)
    signatures[saved_model.SERVING_DEFAULT] = signatures[PREDICT_IMAGES]

    @graph_function(input_signature=[saved_model.open_spec(4, tf.uint8, "pixels")])
    def predict_pixels(pixels):
        return outputs_of(image_inputs.from_pixels(pixels, preprocessing, "pixels", None))

    signatures[PREDICT_PIXELS] = predict_pixels
    return signatures


def _describe(task: TaskFormat, preprocessing: ImagePreprocessing | None) -> dict[str, Any]:
    outputs = ["outputs", "classes"] if task.classification else ["outputs"]
    floats = {"inputs": {"inputs": saved_model.describe_input([-1, *task.input_shape],
                                                              tf.float32)},
              "outputs": outputs, "what": "predicts preprocessed float32 inputs"}
    described = {PREDICT: floats,
                 saved_model.METADATA: {"inputs": {}, "outputs": ["json"],
                                        "what": "this metadata"}}
    if preprocessing is None:
        described[saved_model.SERVING_DEFAULT] = dict(floats, what="= predict")
        return described
    described[PREDICT_IMAGES] = {
        "inputs": {"images": saved_model.describe_input([-1], tf.string)}, "outputs": outputs,
        "what": "predicts encoded images, preprocessed in the graph as in training"}
    described[PREDICT_PIXELS] = {
        "inputs": {"pixels": saved_model.describe_input([-1, -1, -1, -1], tf.uint8)},
        "outputs": outputs,
        "what": "predicts uint8 pixels of any size, preprocessed in the graph as in training"}
    described[saved_model.SERVING_DEFAULT] = dict(described[PREDICT_IMAGES],
                                                  what="= predict_images")
    return described


def export_adapted(
    learner: MetaLearner,
    support_x: Any,
    support_y: Any,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    preprocessing: ImagePreprocessing | None = None,
    query_statistics: str | None = None,
    overwrite: bool = False,
    warmup: bool = True,
) -> str:
    """Adapts the learner to one task and exports the result for TF Serving.

    Args:
        learner: a compiled `GradientLearner` (MAML, MetaSGD, ANIL, Reptile)
            or `ProtoNet`.
        support_x: `[S, *input_shape]` support inputs of the task (float32,
            preprocessed as in training).
        support_y: `[S]` int class ids `0..N-1` (each `S / N` times), or
            `[S, *output_shape]` float targets for regression.
        base_dir: the model base directory TF Serving watches.
        version: the version number (>= 1); default: the next free one.
        preprocessing: the training images' `tfmeta.data.ImagePreprocessing`:
            adds `predict_images` (the `serving_default`) and `predict_pixels`.
        query_statistics: see `export_saved_model`.
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
    # Refuse before anything is written, the base directory included.
    adaptation_plan.served_query_statistics(adaptation_plan.check_learner(learner),
                                            query_statistics)

    def write(directory: str) -> None:
        write_adapted(learner, support_x, support_y, directory, preprocessing=preprocessing,
                      query_statistics_mode=query_statistics, warmup_model_name=model_name)

    return serving_layout.write_version(base_dir, write, version=version, overwrite=overwrite)
