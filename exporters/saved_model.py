"""SavedModel export of a learner's meta-learned model, with adaptation inside the graph.

Signatures (`S` = `ways * shots` support examples; queries in any number):

- `serving_default(inputs[n, ...]) -> outputs`: the learner's Keras `call` in
  inference mode (the meta-learned model without adaptation; embeddings for
  metric learners).
- `adapt_and_predict(support_x[S, ...], support_y[S], query_x[Q, ...]) -> outputs`:
  the learner's own `adapt_and_predict` (its evaluation inner loop, steps and
  learning rates baked in; prototypes then classification for Prototypical
  Networks), then the query predictions, as `learner.predict` gives them.
- `embed(inputs[n, ...]) -> embeddings`: metric learners only.
- `metadata() -> json`: the export metadata (also in `assets.extra/tfmeta.json`).

Inputs are declared with their rank and unknown dimensions; in-graph asserts
(`request_checks`) reject a wrong support size or example shape, class ids
outside `0..ways-1` and NaN/Inf inputs with a clear `InvalidArgumentError`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfmeta.exporters import adaptation_plan, metadata, request_checks, serving_layout, warmup
from tfmeta.exporters.task_format import TaskFormat, task_format
from tfmeta.learners.base import MetaLearner

SERVING_DEFAULT = "serving_default"
ADAPT_AND_PREDICT = "adapt_and_predict"
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


def build_signatures(
    learner: MetaLearner, task: TaskFormat, metadata_json: str
) -> dict[str, Callable]:
    """The SavedModel's signature functions (see the module docstring)."""
    rank = 1 + len(task.input_shape)
    what = (
        f"{task.ways}-way {task.shots}-shot support set" if task.classification
        else f"{task.shots}-shot support set"
    )
    metric = adaptation_plan.is_metric_learner(learner)

    def checked_queries(x, name):
        return request_checks.checked_inputs(x, name, None, task.input_shape)

    @tf.function(input_signature=[open_spec(rank, tf.float32, "inputs")])
    def serving_default(inputs):
        return {"outputs": learner(checked_queries(inputs, "inputs"), training=False)}

    target_rank = 1 + len(task.target_shape)

    @tf.function(input_signature=[
        open_spec(rank, tf.float32, "support_x"),
        open_spec(target_rank, task.target_dtype, "support_y"),
        open_spec(rank, tf.float32, "query_x"),
    ])
    def adapt_and_predict(support_x, support_y, query_x):
        support_x = request_checks.checked_inputs(
            support_x, "support_x", task.support_size, task.input_shape, what
        )
        if task.classification:
            support_y = request_checks.checked_labels(
                support_y, "support_y", task.support_size, task.ways, what, every_class=metric
            )
        else:
            support_y = request_checks.checked_inputs(
                support_y, "support_y", task.support_size, task.target_shape, what
            )
        episode = {
            "support_x": support_x,
            "support_y": support_y,
            "query_x": checked_queries(query_x, "query_x"),
        }
        outputs, _ = learner.adapt_and_predict(episode, initial_state(learner), training=False)
        return {"outputs": outputs}

    @tf.function(input_signature=[])
    def metadata_fn():
        return {"json": tf.constant(metadata_json)}

    signatures = {
        SERVING_DEFAULT: serving_default,
        ADAPT_AND_PREDICT: adapt_and_predict,
        METADATA: metadata_fn,
    }
    if metric:

        @tf.function(input_signature=[open_spec(rank, tf.float32, "inputs")])
        def embed(inputs):
            embeddings = learner.model(checked_queries(inputs, "inputs"), training=False)
            return {"embeddings": tf.reshape(embeddings, [tf.shape(embeddings)[0], -1])}

        signatures[EMBED] = embed
    return signatures


def describe_signatures(learner: MetaLearner, task: TaskFormat) -> dict[str, Any]:
    """The inputs each signature expects, with exact shapes (-1: any number of queries)."""
    inputs = [-1, *task.input_shape]
    support = [task.support_size, *task.input_shape]
    described = {
        SERVING_DEFAULT: {"inputs": {"inputs": describe_input(inputs, tf.float32)},
                          "outputs": ["outputs"]},
        ADAPT_AND_PREDICT: {
            "inputs": {
                "support_x": describe_input(support, tf.float32),
                "support_y": describe_input(
                    [task.support_size, *task.target_shape], task.target_dtype
                ),
                "query_x": describe_input(inputs, tf.float32),
            },
            "outputs": ["outputs"],
        },
        METADATA: {"inputs": {}, "outputs": ["json"]},
    }
    if adaptation_plan.is_metric_learner(learner):
        described[EMBED] = {"inputs": {"inputs": describe_input(inputs, tf.float32)},
                            "outputs": ["embeddings"]}
    return described


def warmup_requests(signatures: dict[str, Any], task: TaskFormat) -> dict[str, dict]:
    """A valid example request for every signature."""
    episode = task.example_episode(WARMUP_QUERIES)
    requests: dict[str, dict[str, np.ndarray]] = {}
    for name in signatures:
        if name == ADAPT_AND_PREDICT:
            requests[name] = episode
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
    warmup_model_name: str | None = "tfmeta",
) -> dict[str, Any]:
    """Writes the SavedModel into `directory` (no versioning; see `export_saved_model`).

    Args:
        learner: a compiled tfmeta learner.
        directory: an empty or new directory.
        ways: classes per task (None for regression).
        shots: support examples per class.
        warmup_model_name: the model name in the warmup requests; None writes
            no warmup file.

    Returns:
        The export metadata.
    """
    learner = adaptation_plan.check_learner(learner)
    task = task_format(learner, ways, shots)
    info = metadata.export_metadata(
        learner, task, fmt="saved_model",
        extra={"signatures": describe_signatures(learner, task)},
    )
    signatures = build_signatures(learner, task, json.dumps(info))
    directory = os.fspath(directory)
    save(directory, signatures)
    write_assets_extra(directory, info, warmup_requests(signatures, task), warmup_model_name)
    return info


def export_saved_model(
    learner: MetaLearner,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    ways: int | None,
    shots: int,
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
        overwrite: replace an existing version (otherwise FileExistsError).
        warmup: write `assets.extra/tf_serving_warmup_requests`.

    Returns:
        The version directory.

    Example:

    ```python
    path = tfmeta.exporters.export_saved_model(maml, "models/omniglot", ways=5, shots=1)
    ```
    """
    base_dir = os.fspath(base_dir)
    model_name = os.path.basename(os.path.normpath(base_dir)) if warmup else None

    def write(directory: str) -> None:
        write_saved_model(
            learner, directory, ways=ways, shots=shots, warmup_model_name=model_name
        )

    return serving_layout.write_version(base_dir, write, version=version, overwrite=overwrite)
