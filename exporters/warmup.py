"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these `PredictionLog` records (a TFRecord file) when it
loads a version, so the first real request does not pay for graph
initialization. Needs the `tensorflow-serving-api` protos
(`pip install 'tfmeta[serving]'`).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import tensorflow as tf

from tfmeta.exporters import metadata

FILENAME = "tf_serving_warmup_requests"


def _protos():
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Writing TF Serving warmup requests needs the TF Serving protos: "
            "`pip install 'tfmeta[serving]'` (package tensorflow-serving-api), or pass "
            "`warmup=False`."
        ) from error
    return model_pb2, predict_pb2, prediction_log_pb2


def path_in(saved_model_dir: str | os.PathLike) -> str:
    """The warmup file's path inside a SavedModel directory."""
    return os.path.join(os.fspath(saved_model_dir), metadata.ASSETS_EXTRA, FILENAME)


def write(
    saved_model_dir: str | os.PathLike,
    requests: Mapping[str, Mapping[str, np.ndarray]],
    model_name: str,
) -> str:
    """Writes one `PredictRequest` per signature.

    Args:
        saved_model_dir: the SavedModel directory (a version directory).
        requests: `{signature_name: {input_name: array}}`.
        model_name: the model name in the requests' `model_spec`.

    Returns:
        The warmup file's path.
    """
    model_pb2, predict_pb2, prediction_log_pb2 = _protos()
    path = path_in(saved_model_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
            )
            for input_name, value in inputs.items():
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read(saved_model_dir: str | os.PathLike) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The `(signature_name, inputs)` of every warmup request in a SavedModel directory."""
    _, _, prediction_log_pb2 = _protos()
    requests = []
    for record in tf.data.TFRecordDataset(path_in(saved_model_dir)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        requests.append((request.model_spec.signature_name, inputs))
    return requests
