"""TFLite export with on-device adaptation that stock LiteRT runs (builtin ops only).

The converted model has these signatures (static shapes: `S` support
examples, `Q` queries, `P` floats of weights):

- `infer(query_x[Q]) -> outputs`: predictions with the weights kept on the
  device (the meta-learned ones until `train_step`/`set_weights` change them),
  in the mode the learner predicts queries (BatchNorm with the query batch's
  statistics when the learner is transductive).
- `adapt_and_predict(support_x[S], support_y[S], query_x[Q]) -> outputs`: the
  learner's evaluation inner loop from the meta-learned weights, then the
  query predictions; the device weights are untouched.
- `train_step(support_x[S], support_y[S]) -> loss`: one inner-loop step on
  the device weights (and BatchNorm moving statistics); returns the support
  loss before the step. `eval_inner_steps` calls then `infer` equal
  `adapt_and_predict`.
- `get_weights() -> weights[P]`, `set_weights(weights[P]) -> weights`,
  `reset() -> weights`: read, replace (e.g. a task's adapted weights saved
  by the app) or restore the meta-learned device weights, as one flat float32
  vector whose layout the metadata lists.
- `metadata() -> json`: the export metadata as a JSON string.

The model's forward pass is re-expressed by `LayerProgram` (Dense, Conv2D,
BatchNormalization, ReLU/activations, pooling, Flatten) with
`builtin_grads` backward passes, and checked against the Keras model and,
after conversion, through the LiteRT interpreter against the learner.

TFLite has no assert ops: invalid requests (labels outside `0..N-1`, NaN
inputs) are not rejected; they give NaN or meaningless outputs, so the app
must validate its inputs. Shapes are fixed by the signatures.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta.exporters import adaptation_plan, builtin_grads, layer_program, metadata, task_format
from tfmeta import adaptation
from tfmeta.learners.base import MetaLearner

_LOSSES = {
    adaptation_plan.CROSS_ENTROPY: builtin_grads.sparse_softmax_cross_entropy,
    adaptation_plan.MEAN_SQUARED_ERROR: builtin_grads.mean_squared_error,
}
SIGNATURES = ("infer", "adapt_and_predict", "train_step", "get_weights", "set_weights", "reset",
              "metadata")


def _flatten(tensors: list) -> tf.Tensor:
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def _unflatten(flat: tf.Tensor, shapes: list[list[int]]) -> list[tf.Tensor]:
    tensors, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        tensors.append(tf.reshape(flat[offset : offset + size], shape))
        offset += size
    return tensors


def weights_layout(model) -> list[dict[str, Any]]:
    """Where each weight sits in the flat vector of `get_weights`/`set_weights`."""
    layout, offset = [], 0
    for trainable, variables in ((True, model.trainable_variables),
                                 (False, model.non_trainable_variables)):
        for variable in variables:
            size = int(np.prod(variable.shape))
            layout.append({"name": variable.path, "shape": list(variable.shape),
                           "offset": offset, "size": size, "trainable": trainable})
            offset += size
    return layout


class OnDeviceModule(tf.Module):
    """The `tf.Module` that converts to the on-device model (see the module docstring).

    Device weights live in plain `tf.Variable`s (Keras variables that a
    signature assigns convert uninitialized); the meta-learned weights are
    constants.

    Args:
        learner: a compiled gradient learner.
        task: the exported task format.
        query_size: queries per call (static).
        metadata_json: the export metadata, returned by `metadata()`.
    """

    def __init__(self, learner: MetaLearner, task: task_format.TaskFormat, query_size: int,
                 metadata_json: str):
        super().__init__(name="tfmeta_on_device")
        self._plan = adaptation_plan.gradient_plan(learner)
        if self._plan.steps == 0 or not self._plan.step_invariant():
            raise ValueError(
                "Expected an evaluation inner loop of at least one step with the same "
                "learning rates at every step for TFLite export (the `train_step` "
                f"signature takes one such step). Received: {self._plan.steps} steps"
            )
        model = learner.model
        self._program = layer_program.LayerProgram(model)
        self._loss = _LOSSES[self._plan.loss]
        self._task = task
        self._query_size = query_size
        self._metadata_json = metadata_json
        self._initial_params = [v.numpy() for v in model.trainable_variables]
        self._initial_state = [v.numpy() for v in model.non_trainable_variables]
        self._shapes = [list(w.shape) for w in self._initial_params + self._initial_state]
        self.params = [tf.Variable(w, name=f"param_{i}")
                       for i, w in enumerate(self._initial_params)]
        self.state = [tf.Variable(w, name=f"state_{i}") for i, w in enumerate(self._initial_state)]

    # ------------------------------------------------------------ computation
    def _step(self, params, state, support_x, support_y):
        """One inner step: `(loss, new_params, new_state)`."""
        loss, grads, state = adaptation.loss_and_gradients(
            self._program, self._loss, params, state, support_x, support_y,
            wrt=self._plan.adapted, training=True,
        )
        params = list(params)
        for i, grad, rate in zip(self._plan.adapted, grads, self._plan.learning_rates[0]):
            params[i] = params[i] - tf.constant(rate, tf.float32) * grad
        return loss, params, state

    def _adapt(self, params, state, support_x, support_y):
        """The evaluation inner loop, as a `WHILE` loop (a graph of one step, not `steps`)."""

        def body(step, params, state):
            _, params, state = self._step(params, state, support_x, support_y)
            return step + 1, params, state

        _, params, state = tf.while_loop(
            lambda step, params, state: step < self._plan.steps,
            body,
            (tf.constant(0), params, state),
        )
        return params, state

    def _predict(self, params, state, query_x):
        outputs, _ = self._program.stateless_call(
            params, state, query_x, training=self._plan.transductive
        )
        return outputs

    def _assign(self, values: list) -> None:
        for variable, value in zip(self.params + self.state, values):
            variable.assign(value)

    def _weights(self) -> dict[str, tf.Tensor]:
        return {"weights": _flatten([v.read_value() for v in self.params + self.state])}

    # ------------------------------------------------------------- signatures
    def signatures(self) -> dict[str, Any]:
        """The concrete functions to convert, keyed by signature name."""
        task, q, s = self._task, self._query_size, self._task.support_size
        size = sum(int(np.prod(shape)) for shape in self._shapes)

        @tf.function(input_signature=[task.inputs_spec(q)])
        def infer(query_x):
            params = [v.read_value() for v in self.params]
            state = [v.read_value() for v in self.state]
            return {"outputs": self._predict(params, state, query_x)}

        @tf.function(input_signature=[task.inputs_spec(s), task.targets_spec(s),
                                      task.inputs_spec(q)])
        def adapt_and_predict(support_x, support_y, query_x):
            params = [tf.constant(w) for w in self._initial_params]
            state = [tf.constant(w) for w in self._initial_state]
            params, state = self._adapt(params, state, support_x, support_y)
            return {"outputs": self._predict(params, state, query_x)}

        @tf.function(input_signature=[task.inputs_spec(s), task.targets_spec(s)])
        def train_step(support_x, support_y):
            params = [v.read_value() for v in self.params]
            state = [v.read_value() for v in self.state]
            loss, params, state = self._step(params, state, support_x, support_y)
            self._assign(params + state)
            return {"loss": loss}

        @tf.function(input_signature=[])
        def get_weights():
            return self._weights()

        @tf.function(input_signature=[tf.TensorSpec([size], tf.float32)])
        def set_weights(weights):
            self._assign(_unflatten(weights, self._shapes))
            return self._weights()

        @tf.function(input_signature=[])
        def reset():
            self._assign([tf.constant(w) for w in self._initial_params + self._initial_state])
            return self._weights()

        @tf.function(input_signature=[])
        def metadata_fn():
            return {"json": tf.constant(self._metadata_json)}

        functions = {
            "infer": infer, "adapt_and_predict": adapt_and_predict, "train_step": train_step,
            "get_weights": get_weights, "set_weights": set_weights, "reset": reset,
            "metadata": metadata_fn,
        }
        return {name: fn.get_concrete_function() for name, fn in functions.items()}


def convert(module: OnDeviceModule) -> bytes:
    """Converts the module with `TFLITE_BUILTINS` only (no Flex) and resource variables.

    Raises:
        tf.lite/converter errors naming the ops that have no builtin version.
    """
    signatures = module.signatures()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "saved_model")
        tf.saved_model.save(module, path, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            path, signature_keys=list(signatures)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.experimental_enable_resource_variables = True
        return converter.convert()


def _interpreter(model_content: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Verifying TFLite models needs LiteRT: `pip install 'tfmeta[tflite]'` "
            "(package ai-edge-litert), or pass `verify=False`."
        ) from error
    return Interpreter(model_content=model_content)


def learner_predictions(learner: MetaLearner, episode: dict[str, np.ndarray]) -> np.ndarray:
    """The learner's own query predictions for one episode (evaluation inner loop)."""
    task = {key: tf.constant(value) for key, value in episode.items()}
    state = [tf.convert_to_tensor(v.value) for v in learner.model.non_trainable_variables]
    predictions, _ = learner.adapt_and_predict(task, state, training=False)
    return predictions.numpy()


def verify(model_content: bytes, learner: MetaLearner, task: task_format.TaskFormat,
           query_size: int, atol: float = 1e-4) -> float:
    """Runs `adapt_and_predict` in LiteRT on an example episode and compares with the learner.

    Returns:
        The max abs difference, relative to `1 + max|outputs|`.

    Raises:
        ValueError: if it exceeds `atol`.
    """
    episode = task.example_episode(query_size)
    runner = _interpreter(model_content).get_signature_runner("adapt_and_predict")
    received = runner(**episode)["outputs"]
    expected = learner_predictions(learner, episode)
    error = float(np.max(np.abs(received - expected))) / (1.0 + float(np.max(np.abs(expected))))
    if not error <= atol:
        raise ValueError(
            "Expected the converted TFLite model to adapt like the learner. Received: "
            f"relative max abs difference {error:.3g} > {atol} on an example episode"
        )
    return error


def export_tflite(
    learner: MetaLearner,
    path: str | os.PathLike,
    *,
    ways: int | None,
    shots: int,
    query_size: int = 1,
    verify_with_litert: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Writes a `.tflite` model that adapts on the device with stock LiteRT.

    Args:
        learner: a compiled gradient learner (MAML family) whose model is a
            chain of supported layers (see `layer_program.SUPPORTED_LAYERS`).
        path: the `.tflite` file to write.
        ways: classes per task (None for regression).
        shots: support examples per class.
        query_size: queries per `infer`/`adapt_and_predict` call (static).
        verify_with_litert: run the converted model in the LiteRT interpreter
            on an example episode and raise unless it matches the learner.
        overwrite: replace an existing file at `path`.

    Returns:
        The export metadata (also returned by the model's `metadata`
        signature).

    Example:

    ```python
    tfmeta.exporters.export_tflite(maml, "maml.tflite", ways=5, shots=1, query_size=5)
    ```
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"Expected a new file for the TFLite model. Received: path '{path}', which "
            "exists; pass overwrite=True to replace it."
        )
    learner = adaptation_plan.check_learner(learner)
    if isinstance(query_size, bool) or not isinstance(query_size, int) or query_size < 1:
        raise ValueError(f"Expected `query_size` >= 1. Received: query_size={query_size!r}")
    task = task_format.task_format(learner, ways, shots)
    program = layer_program.LayerProgram(learner.model)
    program.check_matches_model(batch_size=max(task.support_size, query_size, 2))
    info = metadata.export_metadata(
        learner, task, fmt="tflite",
        extra={"query_size": query_size, "signatures": list(SIGNATURES),
               "weights_layout": weights_layout(learner.model)},
    )
    module = OnDeviceModule(learner, task, query_size, json.dumps(info))
    content = convert(module)
    if verify_with_litert:
        verify(content, learner, task, query_size)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".partial", delete=False) as file:
        file.write(content)
    os.replace(file.name, path)
    return info
