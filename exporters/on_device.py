"""`OnDeviceModel` and `OnDevicePolicy`: tfmeta `.tflite` models in LiteRT, every call checked
against the model's metadata (`OnDevicePolicy`: meta-RL policies, `export_policy_tflite`).

TFLite has no assert ops, and LiteRT's signature runner resizes an input to
whatever array it is given. The graph guards what it can (wrong-size inputs
fail in the interpreter; invalid support labels give NaN outputs and leave
the device state unchanged, see `tfmeta.exporters.tflite`); this wrapper
turns every bad call into one clear `ValueError` before it reaches the
interpreter. Apps on other platforms apply the same rules, all read from the
model's `metadata` signature: inputs of exactly `support_size` / `query_size`
examples of `input_shape`, finite values, class ids `0..ways-1` with every
class present, and a `set_weights` vector of exactly the layout's size (for a
policy: rollouts of exactly `rollouts` x `horizon` steps, a mask in [0, 1],
discrete actions in `0..num_actions-1`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from tfmeta.exporters import tflite


class _LiteRTModel:
    """A tfmeta `.tflite` model in LiteRT: its signatures, its metadata and the flat device
    state (`get_weights`, `set_weights`, `reset`), every call's inputs checked first.

    Subclasses name the metadata `FORMAT` they run and the exporter that writes it.
    """

    FORMAT = ""
    EXPORTER = ""

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = None):
        if not isinstance(model, bytes):
            with open(model, "rb") as file:
                model = file.read()
        self._interpreter = tflite.interpreter(model, num_threads=num_threads)
        self._runners = {name: self._interpreter.get_signature_runner(name)
                         for name in self._interpreter.get_signature_list()}
        if "metadata" not in self._runners:
            raise ValueError(
                f"Expected a model exported by {self.EXPORTER} (with a `metadata` "
                f"signature). Received signatures: {sorted(self._runners)}"
            )
        self.metadata: dict[str, Any] = json.loads(self._runners["metadata"]()["json"].item())
        if self.metadata.get("format") != self.FORMAT:
            raise ValueError(
                f"Expected a model exported by {self.EXPORTER} (format '{self.FORMAT}'). "
                f"Received format {self.metadata.get('format')!r}"
            )
        self._weights_size = sum(entry["size"] for entry in self.metadata["weights_layout"])

    @property
    def signatures(self) -> list[str]:
        """The model's signature names."""
        return sorted(self._runners)

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

    def _run(self, signature: str, **inputs) -> dict[str, np.ndarray]:
        if signature not in self._runners:
            raise ValueError(
                f"Expected one of this model's signatures {self.signatures}. "
                f"Received: {signature!r}"
            )
        return self._runners[signature](**inputs)

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


class OnDeviceModel(_LiteRTModel):
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

    FORMAT = "tflite"
    EXPORTER = "tfmeta.exporters.export_tflite"

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

    # --------------------------------------------------------------- checks
    def _support_x(self, support_x) -> np.ndarray:
        shape = (self.metadata["support_size"], *self.metadata["input_shape"])
        return self._floats(support_x, "support_x", shape)

    def _inputs(self, inputs, name: str) -> np.ndarray:
        shape = (self.metadata["query_size"], *self.metadata["input_shape"])
        return self._floats(inputs, name, shape)

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


class OnDevicePolicy(_LiteRTModel):
    """Runs a policy written by `export_policy_tflite`, checking each call's inputs first.

    Rollouts are `[R, T, ...]` arrays of the export's fixed sizes (`metadata["rollouts"]`,
    `metadata["horizon"]`); observations per `act` / `adapt` call are
    `metadata["observations_per_call"]`. A bad call raises a `ValueError` naming the
    input, where the graph itself would return NaN.

    Args:
        model: the `.tflite` file's path, or its bytes.
        num_threads: LiteRT threads (None: LiteRT's default).

    Example:

    ```python
    policy = tfmeta.exporters.OnDevicePolicy("cheetah.tflite", num_threads=1)
    policy.train_step(observations, actions, rewards, mask)   # the controller's own rollouts
    policy.act(observation)["actions"]                        # the adapted policy
    ```
    """

    FORMAT = "tflite_policy"
    EXPORTER = "tfmeta.exporters.policy_tflite.export_policy_tflite"

    def act(self, observations) -> dict[str, np.ndarray]:
        """The device policy's `actions` (most likely) and `distribution` parameters."""
        return self._run("act", observations=self._observations(observations, "observations"))

    def train_step(self, observations, actions, rewards, mask) -> float:
        """One policy-gradient step of the device state on these rollouts; returns the
        surrogate loss before it."""
        return float(self._run("train_step", **self._rollouts(observations, actions, rewards,
                                                              mask))["loss"])

    def adapt(self, observations, actions, rewards, mask, new_observations
              ) -> dict[str, np.ndarray]:
        """The `actions` and `distribution` for `new_observations` of the meta-learned policy
        adapted by one step to these rollouts; the device state is untouched."""
        return self._run("adapt", **self._rollouts(observations, actions, rewards, mask),
                         new_observations=self._observations(new_observations,
                                                             "new_observations"))

    def _observations(self, values, name: str) -> np.ndarray:
        shape = (self.metadata["observations_per_call"], self.metadata["observation_dim"])
        return self._floats(values, name, shape)

    def _rollouts(self, observations, actions, rewards, mask) -> dict[str, np.ndarray]:
        steps = (self.metadata["rollouts"], self.metadata["horizon"])
        mask = self._floats(mask, "mask", steps)
        if np.any((mask < 0.0) | (mask > 1.0)):
            raise ValueError("Expected `mask` values in [0, 1] (1 for the steps that happened)")
        return {"observations": self._floats(
                    observations, "observations", (*steps, self.metadata["observation_dim"])),
                "actions": self._actions(actions, steps),
                "rewards": self._floats(rewards, "rewards", steps),
                "mask": mask}

    def _actions(self, actions, steps: tuple) -> np.ndarray:
        choices = self.metadata["num_actions"]
        if choices is None:
            return self._floats(actions, "actions", (*steps, *self.metadata["action_shape"]))
        array = np.asarray(actions)
        if array.shape != steps or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"Expected `actions` as integer action ids of shape {steps}. Received shape "
                f"{array.shape}, dtype {array.dtype}"
            )
        if array.min() < 0 or array.max() >= choices:
            raise ValueError(
                f"Expected `actions` in 0..{choices - 1}. Received values "
                f"{array.min()}..{array.max()}"
            )
        return array.astype(np.int32)
