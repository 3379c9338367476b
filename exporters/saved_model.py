"""SavedModel export of a learner's meta-learned model, with adaptation inside the graph.

Signatures (`S` = `ways * shots` support examples; queries in any number):

- `adapt_and_predict_images(support_images[S], support_y[S], query_images[Q])`:
  encoded PNG/JPEG/GIF/BMP images (TF Serving REST: `{"b64": ...}`), run
  through the training preprocessing in the graph (`image_inputs`), then the
  learner's adaptation and query predictions. Exported when `preprocessing`
  is given.
- `adapt_and_predict_pixels(support_pixels[S, h, w, c], support_y[S],
  query_pixels[Q, h', w', c'])`: uint8 pixels of any size with 1, 3 or 4
  channels, preprocessed the same way. Exported with `preprocessing`.
- `adapt_and_predict(support_x[S, ...], support_y[S], query_x[Q, ...])`: model
  inputs the caller has preprocessed as in training (float32).
- `serving_default`: `adapt_and_predict_images` when exported with
  `preprocessing`, else `adapt_and_predict`, so a client that names no
  signature gets task predictions.
- `predict_unadapted(inputs[n, ...])`: the meta-learned model without
  adaptation (gradient learners).
- `embed(inputs[n, ...]) -> embeddings`: learners over an embedding network
  (Prototypical Networks, R2-D2, Matching and Relation Networks).
- `metadata() -> json`: the export metadata (also in `assets.extra/tfmeta.json`).

Every adaptation signature runs the learner's own `adapt_and_predict` (its
evaluation inner loop, prototypes for Prototypical Networks) and returns
`outputs` (logits, or regression outputs) and, for classification, `classes`
(the arg max); a Conditional Neural Process's `outputs` are `[Q, y_dim, 2]`,
also returned as `mean` and `stddev`. Adaptation is one forward pass for
R2-D2, Matching and Relation Networks and CNPs. Queries are normalised with
the support set's statistics (the default `query_statistics="support"`), so a
query's prediction does not depend on the other queries of the request; a
learner trained transductively is refused unless the export names a mode
(`adaptation_plan.served_query_statistics`).

Inputs are declared with their rank and unknown dimensions; in-graph asserts
(`request_checks`) reject a wrong support size or example shape, class ids
outside `0..ways-1`, a support set missing a class, and NaN/Inf inputs with a
clear `InvalidArgumentError` (HTTP 400 from TF Serving).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.exporters import adaptation_plan, image_inputs, metadata, request_checks
from tfmeta.exporters import serving_layout, warmup
from tfmeta.exporters.graph_function import graph_function
from tfmeta.exporters.task_format import TaskFormat, task_format
from tfmeta.learners.base import MetaLearner

SERVING_DEFAULT = "serving_default"
ADAPT_AND_PREDICT = "adapt_and_predict"
ADAPT_AND_PREDICT_IMAGES = "adapt_and_predict_images"
ADAPT_AND_PREDICT_PIXELS = "adapt_and_predict_pixels"
PREDICT_UNADAPTED = "predict_unadapted"
EMBED = "embed"
METADATA = "metadata"
WARMUP_QUERIES = 2


def open_spec(rank: int, dtype: tf.DType, name: str) -> tf.TensorSpec:
    """A signature input of known rank and unknown dimensions (checked in the graph)."""
    return tf.TensorSpec([None] * rank, dtype, name=name)


def describe_input(shape: list, dtype: tf.DType) -> dict[str, Any]:
    """An input's exact shape and dtype, for the metadata."""
    return {"shape": shape, "dtype": dtype.name}


def initial_state(learner: MetaLearner) -> list[tf.Tensor]:
    """The values of the learner's state variables that prediction starts from."""
    variables = getattr(learner, "state_variables", learner.model.non_trainable_variables)
    return [tf.convert_to_tensor(v.value) for v in variables]


def save(directory: str, signatures: dict[str, Any], variables: list | None = None) -> None:
    """Saves `signatures` (tf.functions with input signatures) and the variables they read.

    Only the variables the functions capture (plus `variables`) are saved: no
    optimizer slots, no metric state.
    """
    concrete = {name: fn.get_concrete_function() for name, fn in signatures.items()}
    module = tf.Module()
    captured = {id(v): v for fn in concrete.values() for v in fn.variables}
    module.variables_used = list(captured.values()) + list(variables or [])
    tf.saved_model.save(module, directory, signatures=concrete)


def _support_description(task: TaskFormat) -> str:
    if task.classification:
        return f"{task.ways}-way {task.shots}-shot support set"
    return f"{task.shots}-shot support set"


def build_signatures(
    learner: MetaLearner,
    task: TaskFormat,
    metadata_json: str,
    preprocessing: ImagePreprocessing | None = None,
) -> dict[str, Callable]:
    """The SavedModel's signature functions (see the module docstring)."""
    rank = 1 + len(task.input_shape)
    target_rank = 1 + len(task.target_shape)
    what = _support_description(task)
    neural_process = adaptation_plan.is_neural_process(learner)

    def checked_queries(x, name):
        return request_checks.checked_inputs(x, name, None, task.input_shape)

    label_spec = open_spec(target_rank, task.target_dtype, "support_y")

    # One graph function that every adaptation signature calls: the inner loop is traced (and
    # stored in the SavedModel) once, not once per signature.
    @graph_function(input_signature=[
        tf.TensorSpec([task.support_size, *task.input_shape], tf.float32, name="support_x"),
        label_spec,
        tf.TensorSpec([None, *task.input_shape], tf.float32, name="query_x"),
    ])
    def adapt(support_x, support_y, query_x):
        """Adapts to checked model inputs; `support_y` is checked here."""
        if task.classification:
            support_y = request_checks.checked_labels(
                support_y, "support_y", task.support_size, task.ways, what, every_class=True
            )
        else:
            support_y = request_checks.checked_inputs(
                support_y, "support_y", task.support_size, task.target_shape, what
            )
        episode = {"support_x": support_x, "support_y": support_y, "query_x": query_x}
        # The BatchNorm kernel of the learner's own evaluation, so the served graph computes
        # what `evaluate` and `predict` do (the same float32 rounding, adaptation step by step).
        with learner.batch_norm_kernel(training=False):
            outputs, _ = learner.adapt_and_predict(episode, initial_state(learner),
                                                   training=False)
        result = {"outputs": outputs}
        if task.classification:
            result["classes"] = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        if neural_process:
            result["mean"], result["stddev"] = outputs[..., 0], outputs[..., 1]
        return result

    @graph_function(input_signature=[open_spec(rank, tf.float32, "support_x"), label_spec,
                                     open_spec(rank, tf.float32, "query_x")])
    def adapt_and_predict(support_x, support_y, query_x):
        support_x = request_checks.checked_inputs(
            support_x, "support_x", task.support_size, task.input_shape, what
        )
        return adapt(support_x, support_y, checked_queries(query_x, "query_x"))

    @graph_function(input_signature=[])
    def metadata_fn():
        return {"json": tf.constant(metadata_json)}

    signatures = {ADAPT_AND_PREDICT: adapt_and_predict, METADATA: metadata_fn}
    if preprocessing is not None:

        def adapt_images(support_images, support_y, query_images):
            return adapt(
                image_inputs.from_encoded(support_images, preprocessing, "support_images",
                                          task.support_size, what),
                support_y,
                image_inputs.from_encoded(query_images, preprocessing, "query_images", None),
            )

        images_spec = [open_spec(1, tf.string, "support_images"), label_spec,
                       open_spec(1, tf.string, "query_images")]
        signatures[ADAPT_AND_PREDICT_IMAGES] = graph_function(adapt_images,
                                                              input_signature=images_spec)
        signatures[SERVING_DEFAULT] = signatures[ADAPT_AND_PREDICT_IMAGES]

        @graph_function(input_signature=[open_spec(4, tf.uint8, "support_pixels"), label_spec,
                                         open_spec(4, tf.uint8, "query_pixels")])
        def adapt_and_predict_pixels(support_pixels, support_y, query_pixels):
            return adapt(
                image_inputs.from_pixels(support_pixels, preprocessing, "support_pixels",
                                         task.support_size, what),
                support_y,
                image_inputs.from_pixels(query_pixels, preprocessing, "query_pixels", None),
            )

        signatures[ADAPT_AND_PREDICT_PIXELS] = adapt_and_predict_pixels
    else:
        signatures[SERVING_DEFAULT] = adapt_and_predict
    if adaptation_plan.predicts_with_model(learner):

        @graph_function(input_signature=[open_spec(rank, tf.float32, "inputs")])
        def predict_unadapted(inputs):
            return {"outputs": learner(checked_queries(inputs, "inputs"), training=False)}

        signatures[PREDICT_UNADAPTED] = predict_unadapted
    if adaptation_plan.has_embedding(learner):

        @graph_function(input_signature=[open_spec(rank, tf.float32, "inputs")])
        def embed(inputs):
            embeddings = learner.model(checked_queries(inputs, "inputs"), training=False)
            return {"embeddings": tf.reshape(embeddings, [tf.shape(embeddings)[0], -1])}

        signatures[EMBED] = embed
    return signatures


def describe_signatures(
    learner: MetaLearner, task: TaskFormat, preprocessing: ImagePreprocessing | None = None
) -> dict[str, Any]:
    """What each signature takes and returns (shapes exact; -1: any number, or any size)."""
    inputs = [-1, *task.input_shape]
    support = [task.support_size, *task.input_shape]
    labels = describe_input([task.support_size, *task.target_shape], task.target_dtype)
    outputs = ["outputs", "classes"] if task.classification else ["outputs"]
    if adaptation_plan.is_neural_process(learner):
        outputs = ["outputs", "mean", "stddev"]
    described = {
        ADAPT_AND_PREDICT: {
            "inputs": {"support_x": describe_input(support, tf.float32), "support_y": labels,
                       "query_x": describe_input(inputs, tf.float32)},
            "outputs": outputs,
            "what": "adapts to preprocessed float32 inputs (as in training) and predicts",
        },
        METADATA: {"inputs": {}, "outputs": ["json"], "what": "this metadata"},
    }
    if preprocessing is not None:
        described[ADAPT_AND_PREDICT_IMAGES] = {
            "inputs": {"support_images": describe_input([task.support_size], tf.string),
                       "support_y": labels,
                       "query_images": describe_input([-1], tf.string)},
            "outputs": outputs,
            "what": "adapts to encoded PNG/JPEG/GIF/BMP images (REST: {\"b64\": ...}), "
                    "preprocessed in the graph as in training, and predicts",
        }
        described[ADAPT_AND_PREDICT_PIXELS] = {
            "inputs": {"support_pixels": describe_input([task.support_size, -1, -1, -1],
                                                        tf.uint8),
                       "support_y": labels,
                       "query_pixels": describe_input([-1, -1, -1, -1], tf.uint8)},
            "outputs": outputs,
            "what": "adapts to uint8 pixels of any size (1, 3 or 4 channels), preprocessed "
                    "in the graph as in training, and predicts",
        }
        described[SERVING_DEFAULT] = dict(described[ADAPT_AND_PREDICT_IMAGES],
                                          what="= adapt_and_predict_images")
    else:
        described[SERVING_DEFAULT] = dict(described[ADAPT_AND_PREDICT],
                                          what="= adapt_and_predict")
    if adaptation_plan.predicts_with_model(learner):
        described[PREDICT_UNADAPTED] = {
            "inputs": {"inputs": describe_input(inputs, tf.float32)}, "outputs": ["outputs"],
            "what": "the meta-learned model's outputs, without adaptation",
        }
    if adaptation_plan.has_embedding(learner):
        described[EMBED] = {"inputs": {"inputs": describe_input(inputs, tf.float32)},
                            "outputs": ["embeddings"],
                            "what": "the embedding network's outputs, flattened"}
    return described


def warmup_requests(
    signatures: dict[str, Any], task: TaskFormat, preprocessing: ImagePreprocessing | None
) -> dict[str, dict]:
    """A valid example request for every signature."""
    episode = task.example_episode(WARMUP_QUERIES)
    requests: dict[str, dict[str, np.ndarray]] = {}
    if preprocessing is not None:
        support = image_inputs.example_images(task.support_size, preprocessing, seed=0)
        queries = image_inputs.example_images(WARMUP_QUERIES, preprocessing, seed=1)
        images = {"support_images": image_inputs.encode_png(support),
                  "support_y": episode["support_y"],
                  "query_images": image_inputs.encode_png(queries)}
        pixels = {"support_pixels": support, "support_y": episode["support_y"],
                  "query_pixels": queries}
    for name in signatures:
        if name == ADAPT_AND_PREDICT or (name == SERVING_DEFAULT and preprocessing is None):
            requests[name] = episode
        elif name in (ADAPT_AND_PREDICT_IMAGES, SERVING_DEFAULT):
            requests[name] = images
        elif name == ADAPT_AND_PREDICT_PIXELS:
            requests[name] = pixels
        elif name == METADATA:
            requests[name] = {}
        else:
            requests[name] = {"inputs": episode["query_x"]}
    return requests


def write_assets_extra(
    directory: str,
    info: dict[str, Any],
    requests: dict[str, dict[str, np.ndarray]],
    warmup_model_name: str | None,
) -> None:
    """Writes `assets.extra/tfmeta.json` and (unless `warmup_model_name` is None) the warmup."""
    metadata.write(directory, info)
    if warmup_model_name is not None:
        warmup.write(directory, requests, warmup_model_name)


def write_saved_model(
    learner: MetaLearner,
    directory: str | os.PathLike,
    *,
    ways: int | None,
    shots: int,
    preprocessing: ImagePreprocessing | None = None,
    query_statistics: str | None = None,
    warmup_model_name: str | None = "tfmeta",
) -> dict[str, Any]:
    """Writes the SavedModel into `directory` (no versioning; see `export_saved_model`).

    Args:
        learner: a compiled tfmeta learner.
        directory: an empty or new directory.
        ways: classes per task (None for regression).
        shots: support examples per class.
        preprocessing: the training images' preprocessing, for the image signatures.
        query_statistics: see `export_saved_model`.
        warmup_model_name: the model name in the warmup requests; None writes
            no warmup file.

    Returns:
        The export metadata.
    """
    learner = adaptation_plan.check_learner(learner)
    task = task_format(learner, ways, shots)
    if preprocessing is not None:
        preprocessing = image_inputs.check_preprocessing(preprocessing, task)
    mode = adaptation_plan.served_query_statistics(learner, query_statistics)
    with adaptation_plan.serving_mode(learner, mode):
        extra = {"signatures": describe_signatures(learner, task, preprocessing),
                 "preprocessing": None if preprocessing is None else preprocessing.to_json()}
        info = metadata.export_metadata(learner, task, fmt="saved_model", extra=extra)
        signatures = build_signatures(learner, task, json.dumps(info), preprocessing)
        directory = os.fspath(directory)
        save(directory, signatures)
    requests = warmup_requests(signatures, task, preprocessing)
    write_assets_extra(directory, info, requests, warmup_model_name)
    return info


def export_saved_model(
    learner: MetaLearner,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    ways: int | None,
    shots: int,
    preprocessing: ImagePreprocessing | None = None,
    query_statistics: str | None = None,
    overwrite: bool = False,
    warmup: bool = True,
) -> str:
    """Exports a learner for TF Serving as `<base_dir>/<version>/`, written atomically.

    Args:
        learner: a compiled tfmeta learner (`tfmeta.MAML`, ...).
        base_dir: the model base directory TF Serving watches
            (`--model_base_path`); its name is the model name in the warmup
            requests.
        version: the version number (>= 1); default: the next free one.
        ways: classes per task; None for regression.
        shots: support examples per class (per task for regression).
        preprocessing: the `tfmeta.data.ImagePreprocessing` the training
            images went through (e.g. `tfmeta.data.omniglot_preprocessing()`):
            adds the image-bytes and pixel signatures, and `serving_default`
            takes encoded images. None exports float inputs only.
        query_statistics: None (the learner's own mode; a transductive
            learner with BatchNorm is refused, since each query's prediction
            would depend on the rest of the request), or a mode of
            `tfmeta.query_statistics.MODES` to export in that mode instead.
        overwrite: replace an existing version (otherwise FileExistsError).
        warmup: write `assets.extra/tf_serving_warmup_requests`.

    Returns:
        The version directory.

    Example:

    ```python
    path = tfmeta.exporters.export_saved_model(
        maml, "models/omniglot", ways=5, shots=1,
        preprocessing=tfmeta.data.omniglot_preprocessing())
    ```
    """
    base_dir = os.fspath(base_dir)
    model_name = os.path.basename(os.path.normpath(base_dir)) if warmup else None
    # Refuse before anything is written, the base directory included.
    adaptation_plan.served_query_statistics(adaptation_plan.check_learner(learner),
                                            query_statistics)
    task_format(learner, ways, shots)

    def write(directory: str) -> None:
        write_saved_model(
            learner, directory, ways=ways, shots=shots, preprocessing=preprocessing,
            query_statistics=query_statistics, warmup_model_name=model_name,
        )

    return serving_layout.write_version(base_dir, write, version=version, overwrite=overwrite)
