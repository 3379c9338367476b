"""TF Serving's REST request rules, for tests that cannot run `tensorflow_model_server`.

A client's JSON body is turned into the tensors TF Serving would feed the
SavedModel, following its documented rules (tensorflow_serving/util/
json_tensor.cc): a request names `signature_name` or gets `serving_default`;
the columnar form `{"inputs": {name: nested lists}}` gives each input its own
dimension 0; a string tensor's element may be `{"b64": "..."}`, which is
base64-decoded; numbers must convert to the input's dtype without loss.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import tensorflow as tf

DEFAULT_SIGNATURE = "serving_default"


def encode_request(inputs: dict, signature_name: str | None = None) -> str:
    """The JSON body a client sends: bytes as `{"b64": ...}`, arrays as nested lists."""

    def jsonable(value):
        if isinstance(value, (bytes, np.bytes_)):
            return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, np.ndarray):
            return [jsonable(v) for v in value] if value.dtype == object else value.tolist()
        if isinstance(value, (list, tuple)):
            return [jsonable(v) for v in value]
        return value

    body = {"inputs": {name: jsonable(value) for name, value in inputs.items()}}
    if signature_name is not None:
        body["signature_name"] = signature_name
    return json.dumps(body)


def decode_request(body: str, loaded_model) -> tuple[str, dict[str, tf.Tensor]]:
    """`(signature_name, inputs)` as TF Serving would feed them, for a `tf.saved_model.load`ed
    model."""
    request = json.loads(body)
    name = request.get("signature_name", DEFAULT_SIGNATURE)
    specs = loaded_model.signatures[name].structured_input_signature[1]
    tensors = {}
    for key, value in request["inputs"].items():
        dtype = specs[key].dtype
        if dtype == tf.string:
            tensors[key] = tf.constant(_strings(value), tf.string)
        else:
            array = np.asarray(value)
            converted = array.astype(dtype.as_numpy_dtype)
            if not np.array_equal(converted, array):
                raise ValueError(f"JSON value of {key} is not of expected type {dtype.name}")
            tensors[key] = tf.constant(converted)
    return name, tensors


def _strings(value):
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise ValueError("JSON Value not formatted correctly for base64 data")
        return base64.b64decode(value["b64"])
    return value.encode("utf-8")
