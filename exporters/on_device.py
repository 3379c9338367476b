"""`OnDeviceModel`: a tfmeta `.tflite` model in LiteRT, every call checked against its metadata.

TFLite has no assert ops, and LiteRT's signature runner resizes an input to
whatever array it is given. The graph guards what it can (wrong-size inputs
fail in the interpreter; invalid support labels give NaN outputs and leave
the device state unchanged, see `tfmeta.exporters.tflite`); this wrapper
turns every bad call into one clear `ValueError` before it reaches the
interpreter. Apps on other platforms apply the same rules, all read from the
model's `metadata` signature: inputs of exactly `support_size` / `query_size`
examples of `input_shape`, finite values, class ids `0..ways-1` with every
class present, and a `set_weights` vector of exactly the layout's size.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from tfmeta.exporters import tflite


class OnDeviceModel:
    """Runs a model written by `export_tflite`, checking each call's inputs first.

    Args:
        model: the `.tflite` file's path, or its bytes.
        num_threads: LiteRT threads (None: LiteRT's default).

    Example:

    ```python
    model = tfmeta.exporters.OnDeviceModel("omniglot.tflite", num_threads=1)
    logits = model.adapt_and_predict(support_x, support_y, query_x)
    model.train_step(support_x, support_y)          # adapt the device state
    logits = model.infer(query_x)
    ```
    """

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = None):
        if not isinstance(model, bytes):
            with open(model, "rb") as file:
                model = file.read()
        self._interpreter = tflite.interpreter(model, num_threads=num_threads)
        self._runners = {name: self._interpreter.get_signature_runner(name)
                         for name in self._interpreter.get_signature_list()}
        if "metadata" not in self._runners:
            raise ValueError(
                "Expected a model exported by tfmeta.exporters.export_tflite (with a `metadata` "
                f"signature). Received signatures: {sorted(self._runners)}"
            )
        self.metadata: dict[str, Any] = json.loads(self._runners["metadata"]()["json"].item())
        self._weights_size = sum(entry["size"] for entry in self.metadata["weights_layout"])

    @property
    def signatures(self) -> list[str]:
        """The model's signature names."""
        return sorted(self._runners)

    # ---------------------------------------------------------------- calls
    def adapt_and_predict(self, support_x, support_y, query_x) -> np.ndarray:
        """Adapts to the support set and returns the query outputs; the device state is
        untouched."""
        return self._run("adapt_and_predict", support_x=self._support_x(support_x),
                         support_y=self._support_y(support_y),
                         query_x=self._inputs(query_x, "query_x"))["outputs"]

    def train_step(self, support_x, support_y) -> float:
        """One adaptation step of the device state on the support set; returns the support loss."""
        return float(self._run("train_step", support_x=self._support_x(support_x),
                               support_y=self._support_y(support_y))["loss"])

    def infer(self, query_x) -> np.ndarray:
        """Query outputs of the device state."""
        return self._run("infer", query_x=self._inputs(query_x, "query_x"))["outputs"]

    def embed(self, inputs) -> np.ndarray:
        """Embeddings (Prototypical Networks)."""
        return self._run("embed", inputs=self._inputs(inputs, "inputs"))["embeddings"]

    def get_weights(self) -> np.ndarray:
        """The device state as one flat float32 vector (`metadata["weights_layout"]`)."""
        return self._run("get_weights")["weights"]

    def set_weights(self, weights) -> np.ndarray:
        """Replaces the device state (e.g. with a task's adapted state saved earlier)."""
        weights = self._floats(weights, "weights", (self._weights_size,))
        return self._run("set_weights", weights=weights)["weights"]

    def reset(self) -> np.ndarray:
        """Restores the meta-learned device state."""
        return self._run("reset")["weights"]

    # --------------------------------------------------------------- checks
    def _run(self, signature: str, **inputs) -> dict[str, np.ndarray]:
        if signature not in self._runners:
            raise ValueError(
                f"Expected one of this model's signatures {self.signatures}. "
                f"Received: {signature!r}"
            )
        return self._runners[signature](**inputs)

    def _support_x(self, support_x) -> np.ndarray:
        shape = (self.metadata["support_size"], *self.metadata["input_shape"])
        return self._floats(support_x, "support_x", shape)

    def _inputs(self, inputs, name: str) -> np.ndarray:
        shape = (self.metadata["query_size"], *self.metadata["input_shape"])
        return self._floats(inputs, name, shape)

    def _floats(self, values, name: str, shape: tuple) -> np.ndarray:
        array = np.asarray(values)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"Expected numbers in `{name}`. Received dtype {array.dtype}")
        if array.shape != tuple(shape):
            raise ValueError(
                f"Expected `{name}` of shape {tuple(shape)} (this export's fixed sizes, from its "
                f"metadata). Received shape {array.shape}"
            )
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"Expected finite values in `{name}`. Received NaN or Inf")
        return array

    def _support_y(self, support_y) -> np.ndarray:
        size, ways = self.metadata["support_size"], self.metadata["ways"]
        if ways is None:  # regression targets
            shape = (size, *self.metadata["target_shape"])
            return self._floats(support_y, "support_y", shape)
        labels = np.asarray(support_y)
        integral = np.issubdtype(labels.dtype, np.integer) or (
            np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0)
        )
        if labels.shape != (size,) or not integral:
            raise ValueError(
                f"Expected `support_y` as {size} integer class ids. Received shape "
                f"{labels.shape}, dtype {labels.dtype}"
            )
        labels = labels.astype(np.int64)
        if labels.min() < 0 or labels.max() >= ways:
            raise ValueError(
                f"Expected `support_y` class ids in 0..{ways - 1}. Received values "
                f"{labels.min()}..{labels.max()}"
            )
        missing = sorted(set(range(ways)) - set(labels.tolist()))
        if missing:
            raise ValueError(
                f"Expected every class 0..{ways - 1} in `support_y`. Received no example of "
                f"class(es) {missing}"
            )
        return labels.astype(np.int32)
