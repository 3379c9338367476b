"""TFLite export with on-device adaptation that stock LiteRT runs (builtin ops only).

Signatures of the converted model (static shapes: `S = ways * shots` support
examples, `Q` queries fixed at export, `P` floats of device state):

- `adapt_and_predict(support_x[S], support_y[S], query_x[Q]) -> outputs`: the
  learner's evaluation adaptation from the meta-learned weights, then the
  query predictions, as `learner.predict` gives them. Device state untouched.
- `train_step(support_x[S], support_y[S]) -> loss`: adapts the device state.
  Gradient learners (MAML, Meta-SGD, ANIL, Reptile): one inner-loop SGD step
  on the device weights (and BatchNorm moving statistics); the loss is the
  support loss before the step; `eval_inner_steps` calls then `infer` give
  `adapt_and_predict`'s outputs. Prototypical Networks: stores the support
  set's prototypes; the loss is the support cross-entropy against them.
- `infer(query_x[Q]) -> outputs`: predictions with the device state (the
  meta-learned weights, or empty prototypes, until `train_step` or
  `set_weights`), in the mode the learner predicts queries. With
  `query_statistics="support"` (the default), `train_step` also stores the
  support set's BatchNorm statistics under the new weights in the state's
  BatchNorm entries, so `infer` normalises queries exactly as
  `adapt_and_predict` does.
- `get_weights() -> weights[P]`, `set_weights(weights[P]) -> weights`,
  `reset() -> weights`: read, replace (e.g. with a task's adapted state the
  app saved) or restore the initial device state, as one flat float32 vector
  whose layout the metadata lists.
- `embed(inputs[Q]) -> embeddings`: Prototypical, Matching and Relation
  Networks.
- `metadata() -> json`: the export metadata as a JSON string.

The learners that adapt in one forward pass have their modules in
`one_pass_devices` (the device state every module shares is in
`device_state`). Conditional Neural Processes: `train_step` stores the
context set's mean encoding, `infer` decodes queries with it (outputs
`[Q, y_dim, 2]`: mean, standard deviation). Matching and Relation Networks
keep the support set's embeddings and one-hot labels as device state and run
their own head on them (the relation module and FCE LSTMs frozen into the
model). R2-D2 keeps the ridge (or logistic) weights fitted to the support set,
solved with an unrolled Cholesky factorization in builtin ops (`builtin_linalg`).

Gradient learners run the wrapped model through `LayerProgram` (supported
layers: Dense, Conv2D, BatchNormalization, ReLU/activations, pooling,
Flatten) with the `builtin_grads` backward passes; the inner loop is one
`WHILE` loop. When only the last layers adapt (ANIL, or any learner whose
`adapted_indices` leave a body out), the body runs once per call on support
and queries and the loop runs over the head alone. Every export is checked
against the Keras model and, after conversion, through the LiteRT
interpreter against the learner.

TFLite has no assert ops. What the graph guards itself: an input of the
wrong size (e.g. a `set_weights` vector one float short or long, which the
interpreter would otherwise resize to) fails in the interpreter instead of
being read partially; support labels out of range or missing a class give NaN
outputs and leave the device state unchanged. `OnDeviceModel`
(`tfmeta.exporters.on_device`) checks every call against the metadata and
raises a clear error instead; apps on other platforms apply the same rules
from the metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta import adaptation, query_statistics
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.exporters import adaptation_plan, builtin_grads, image_inputs, layer_program
from tfmeta.exporters import metadata
from tfmeta.exporters.device_state import (
    COMMON_SIGNATURES,
    DeviceModule,
    exact_size,
    nan_unless,
    weights_layout,
)
from tfmeta.exporters.graph_function import graph_function
from tfmeta.exporters.layer_program import Statistics
from tfmeta.exporters.one_pass_devices import (
    NeuralProcessDeviceModule,
    PrototypeDeviceModule,
    RidgeDeviceModule,
    SupportSetDeviceModule,
)
from tfmeta.exporters.task_format import TaskFormat, task_format
from tfmeta.learners import MatchingNetworks, R2D2, RelationNetwork
from tfmeta.learners.base import MetaLearner

_LOSSES = {
    adaptation_plan.CROSS_ENTROPY: builtin_grads.sparse_softmax_cross_entropy,
    adaptation_plan.MEAN_SQUARED_ERROR: builtin_grads.mean_squared_error,
}


_SUPPORT_MODES = (query_statistics.SUPPORT, query_statistics.SUPPORT_INSTANCE)


class GradientDeviceModule(DeviceModule):
    """On-device adaptation by gradient descent (MAML, Meta-SGD, ANIL, Reptile).

    Args:
        learner: a compiled `GradientLearner`.
        task: the exported task format.
        query_size: queries per `infer`/`adapt_and_predict` call.
    """

    SIGNATURES = COMMON_SIGNATURES + ("infer", "adapt_and_predict", "train_step")

    def __init__(self, learner: MetaLearner, task: TaskFormat, query_size: int):
        plan = adaptation_plan.gradient_plan(learner)
        if plan.steps == 0:
            raise ValueError(
                "Expected at least one evaluation inner step for on-device adaptation. "
                f"Received: eval_inner_steps={plan.steps}"
            )
        model = learner.model
        self._plan = plan
        self._program = layer_program.LayerProgram(model)
        self._program.check_matches_model(max(task.support_size, query_size, 2))
        self._loss = _LOSSES[plan.loss]
        self._num_params = len(model.trainable_variables)
        # Layers before the first adapted one run once per call (their batch
        # statistics are the same in every step), except with moving
        # statistics, which the inner loop's passes move step by step.
        first_adapted = self._program.first_step_reading(plan.adapted)
        self._split = first_adapted if plan.query_statistics != query_statistics.MOVING else 0
        self._layout_json = json.dumps(weights_layout(  # a string: tf.Module would wrap a list
            [(v.path, list(v.shape), True) for v in model.trainable_variables]
            + [(v.path, list(v.shape), False) for v in model.non_trainable_variables]
        ))
        super().__init__(
            [v.numpy() for v in model.trainable_variables + model.non_trainable_variables],
            task, query_size,
        )
        rates = plan.stacked_learning_rates()
        self._rates_vary = any(not np.all(r == r[:1]) for r in rates)
        self._rates = rates

    def layout(self) -> list[dict[str, Any]]:
        return json.loads(self._layout_json)

    def _step_rates(self, step: tf.Tensor) -> list[tf.Tensor]:
        if not self._rates_vary:
            return [tf.constant(r[0]) for r in self._rates]
        index = tf.minimum(step, self._plan.steps - 1)
        return [tf.gather(tf.constant(r), index) for r in self._rates]

    def _step(self, network, params, state, support, support_y, step):
        """One inner step of `network` on `support`: `(support_loss, new_params, new_state)`."""
        loss, grads, state = adaptation.loss_and_gradients(
            network, self._loss, params, state, support, support_y,
            wrt=self._plan.adapted, training=True,
        )
        params = list(params)
        for i, grad, rate in zip(self._plan.adapted, grads, self._step_rates(step)):
            params[i] = params[i] - rate * grad
        return loss, params, state

    def _features(self, params, state, support_x, query_x):
        """What the adapted layers see: `(network, support_inputs, query_inputs)`.

        Without a fixed body, the whole program and the raw inputs; with one,
        the head and the body's outputs, normalised as the learner does
        (support rows' statistics, or each batch's own).
        """
        if self._split == 0:
            return self._network(0), support_x, query_x
        body = self._program.segment(0, self._split)
        if self._plan.query_statistics in _SUPPORT_MODES:
            features, _ = body.stateless_call(
                params, state, tf.concat([support_x, query_x], 0),
                statistics=self._statistics(batch=True, rows=support_x.shape[0]),
            )
            return self._network(self._split), features[: support_x.shape[0]], \
                features[support_x.shape[0]:]
        support, _ = body.stateless_call(params, state, support_x, statistics=Statistics(True))
        queries, _ = body.stateless_call(params, state, query_x, statistics=Statistics(True))
        return self._network(self._split), support, queries

    def _statistics(self, **kwargs) -> Statistics:
        """`Statistics(**kwargs)`, pooling each example's own moments in `"support_instance"`."""
        instance = self._plan.query_statistics == query_statistics.SUPPORT_INSTANCE
        return Statistics(with_instance=instance, **kwargs)

    def _network(self, start: int) -> layer_program.Segment:
        """The layers from `start` on, as the inner loop runs them (training mode, and the
        support set's pooled moments in `"support_instance"`)."""
        return self._program.segment(start, None, self._statistics(batch=True))

    def _predict(self, network, params, state, support, queries):
        """Query outputs of adapted weights, normalised as the learner predicts queries."""
        mode = self._plan.query_statistics
        if mode in _SUPPORT_MODES:
            outputs, _ = network.stateless_call(
                params, state, tf.concat([support, queries], 0),
                statistics=self._statistics(batch=True, rows=support.shape[0]),
            )
            return outputs[support.shape[0]:]
        batch = mode == query_statistics.TRANSDUCTIVE
        outputs, _ = network.stateless_call(params, state, queries,
                                            statistics=Statistics(batch=batch))
        return outputs

    def signatures(self) -> dict[str, Any]:
        task, q, s = self._task, self._query_size, self._task.support_size
        split = self._num_params
        mode = self._plan.query_statistics

        @graph_function(input_signature=[task.inputs_spec(q)])
        def infer(query_x):
            values = self._read()
            outputs, _ = self._program.stateless_call(
                values[:split], values[split:], exact_size(query_x),
                statistics=self._statistics(batch=mode == query_statistics.TRANSDUCTIVE,
                                            context_size=s),
            )
            return {"outputs": outputs}

        @graph_function(input_signature=[task.inputs_spec(s), task.targets_spec(s),
                                         task.inputs_spec(q)])
        def adapt_and_predict(support_x, support_y, query_x):
            support_x, support_y, valid = self._checked_support(support_x, support_y)
            initial = [tf.constant(v) for v in self._initial]
            network, support, queries = self._features(
                initial[:split], initial[split:], support_x, exact_size(query_x))

            def body(step, params, state):
                _, params, state = self._step(network, params, state, support, support_y, step)
                return step + 1, params, state

            _, params, state = tf.while_loop(
                lambda step, params, state: step < self._plan.steps,
                body,
                (tf.constant(0), initial[:split], initial[split:]),
            )
            outputs = self._predict(network, params, state, support, queries)
            return {"outputs": nan_unless(valid, outputs)}

        @graph_function(input_signature=[task.inputs_spec(s), task.targets_spec(s)])
        def train_step(support_x, support_y):
            support_x, support_y, valid = self._checked_support(support_x, support_y)
            values = self._read()
            params, state = values[:split], values[split:]
            bake = mode in _SUPPORT_MODES  # for `infer`: the support statistics
            network, support = self._network(0), support_x
            if self._split:  # the body's output is the same in every step: run it once
                support, state = self._program.segment(0, self._split).stateless_call(
                    params, state, support_x,
                    statistics=self._statistics(batch=True, replace_moving=bake))
                network = self._network(self._split)
            loss, new_params, new_state = self._step(
                network, params, state, support, support_y, self.steps_taken.read_value()
            )
            if bake:
                _, new_state = network.stateless_call(
                    new_params, new_state, support,
                    statistics=self._statistics(batch=True, replace_moving=True),
                )
            self._assign([tf.where(valid, new, old)
                          for new, old in zip(new_params + new_state, values)])
            self.steps_taken.assign_add(tf.cast(valid, tf.int32))
            return {"loss": nan_unless(valid, loss)}

        return {"infer": infer, "adapt_and_predict": adapt_and_predict,
                "train_step": train_step, **self._common_signatures()}


def device_module(learner: MetaLearner, task: TaskFormat, query_size: int) -> DeviceModule:
    """The on-device module for `learner`.

    Raises:
        ValueError: for learners with no on-device version (FineTune, MAML++
            per-step BatchNorm statistics, one-pass learners in
            `query_statistics="support_instance"`), saying why and listing the
            supported ones.
    """
    if adaptation_plan.is_neural_process(learner):
        return NeuralProcessDeviceModule(learner, task, query_size)
    support_set = isinstance(learner, (MatchingNetworks, RelationNetwork))
    if support_set or isinstance(learner, R2D2) or adaptation_plan.is_metric_learner(learner):
        if learner.query_statistics == query_statistics.SUPPORT_INSTANCE:
            raise ValueError(
                f"Expected {type(learner).__name__} with query_statistics 'support', 'moving' "
                "or 'transductive' for on-device adaptation. Received: "
                "query_statistics='support_instance' (its per-example pooling is exported for "
                "gradient learners only); export with query_statistics='support', or use "
                "export_saved_model"
            )
        if support_set:
            return SupportSetDeviceModule(learner, task, query_size)
        if isinstance(learner, R2D2):
            return RidgeDeviceModule(learner, task, query_size)
        return PrototypeDeviceModule(learner, task, query_size)
    if adaptation_plan.predicts_with_model(learner):
        return GradientDeviceModule(learner, task, query_size)
    raise ValueError(
        "Expected a learner with an on-device version: a GradientLearner (MAML, MetaSGD, "
        "ANIL, Reptile), ConditionalNeuralProcess, MatchingNetworks, RelationNetwork, R2D2 "
        f"or ProtoNet. Received: {type(learner).__name__}"
    )


def convert(module: DeviceModule) -> bytes:
    """Converts the module's signatures with `TFLITE_BUILTINS` only (no Flex ops).

    Raises:
        ConverterError: naming the ops that have no builtin version.
    """
    signatures = module.signatures()
    with tempfile.TemporaryDirectory() as directory:
        tf.saved_model.save(module, directory, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            directory, signature_keys=list(signatures)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.experimental_enable_resource_variables = True
        return converter.convert()


def interpreter(model_content: bytes, num_threads: int | None = None) -> Any:
    """A LiteRT `Interpreter` for a converted model."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Running TFLite models needs LiteRT: `pip install 'tfmeta[tflite]'` "
            "(package ai-edge-litert), or export with `verify_with_litert=False`."
        ) from error
    return Interpreter(model_content=model_content, num_threads=num_threads)


def learner_predictions(learner: MetaLearner, episode: dict[str, np.ndarray]) -> np.ndarray:
    """The learner's own query predictions for one episode (its evaluation adaptation)."""
    task = {key: tf.constant(value) for key, value in episode.items()}
    state = [tf.convert_to_tensor(v.value) for v in learner.state_variables]
    predictions, _ = learner.adapt_and_predict(task, state, training=False)
    return predictions.numpy()


def write_model(path: str, content: bytes) -> None:
    """Writes a `.tflite` file atomically: a killed export leaves no partial model at `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".partial", delete=False) as file:
        file.write(content)
    os.replace(file.name, path)


def relative_difference(received: np.ndarray, expected: np.ndarray) -> float:
    """The max abs difference of two outputs, relative to `1 + max|expected|`."""
    return float(np.max(np.abs(received - expected))) / (1.0 + float(np.max(np.abs(expected))))


def verify(model_content: bytes, learner: MetaLearner, task: TaskFormat, query_size: int,
           episode: dict[str, np.ndarray] | None = None, atol: float = 1e-4) -> float:
    """Runs `adapt_and_predict` in LiteRT on an episode and compares with the learner.

    Args:
        episode: `support_x`, `support_y`, `query_x` arrays of the exported
            shapes; default: `task.example_episode` (standard normal inputs).

    Returns:
        The max abs difference, relative to `1 + max|expected|`.

    Raises:
        ValueError: if it exceeds `atol`.
    """
    if episode is None:
        episode = task.example_episode(query_size)
    else:
        episode = {
            "support_x": np.asarray(episode["support_x"], np.float32),
            "support_y": np.asarray(episode["support_y"], task.target_dtype.name),
            "query_x": np.asarray(episode["query_x"], np.float32),
        }
    runner = interpreter(model_content).get_signature_runner("adapt_and_predict")
    received = runner(**episode)["outputs"]
    expected = learner_predictions(learner, episode)
    error = relative_difference(received, expected)
    if not error <= atol:
        raise ValueError(
            "Expected the converted TFLite model to adapt like the learner. Received: "
            f"relative max abs difference {error:.3g} > {atol} on the verification episode. "
            "If the learner's own adaptation is numerically unstable on it (large inner "
            "learning rate, untrained weights, inputs unlike the data: outputs then change "
            "this much under a 1e-6 change of the inputs), pass a `verification_episode` "
            "from the real data."
        )
    return error


def export_tflite(
    learner: MetaLearner,
    path: str | os.PathLike,
    *,
    ways: int | None,
    shots: int,
    query_size: int = 1,
    preprocessing: ImagePreprocessing | None = None,
    query_statistics: str | None = None,
    verify_with_litert: bool = True,
    verification_episode: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Writes a `.tflite` model that adapts on the device with stock LiteRT.

    Args:
        learner: a compiled `GradientLearner` (MAML, MetaSGD, ANIL, Reptile)
            whose model is a chain of supported layers (see
            `layer_program.SUPPORTED_LAYERS`), a `ProtoNet`, `MatchingNetworks`,
            `RelationNetwork`, `R2D2` or `ConditionalNeuralProcess`.
        path: the `.tflite` file to write.
        ways: classes per task (None for regression).
        shots: support examples per class (per task for regression).
        query_size: queries per `infer`/`adapt_and_predict` call (static).
            With the default `query_statistics="support"` a query's prediction
            does not depend on the others, so 1 serves single queries as well
            as any batch does.
        preprocessing: the training images' `tfmeta.data.ImagePreprocessing`,
            stated in the metadata (the app must apply it: decoding and
            Lanczos resizing have no TFLite builtin ops).
        query_statistics: see `tfmeta.exporters.export_saved_model`: None
            exports the learner's own mode and refuses a transductive one.
        verify_with_litert: run the converted model in the LiteRT interpreter
            on an episode and raise unless it matches the learner.
        verification_episode: that episode (`support_x`, `support_y`,
            `query_x` of the exported shapes); default: standard normal
            inputs and every class `shots` times.
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
    task = task_format(learner, ways, shots)
    if preprocessing is not None:
        preprocessing = image_inputs.check_preprocessing(preprocessing, task)
    mode = adaptation_plan.served_query_statistics(learner, query_statistics)
    with adaptation_plan.serving_mode(learner, mode):
        module = device_module(learner, task, query_size)
        info = metadata.export_metadata(
            learner, task, fmt="tflite",
            extra={"query_size": query_size, "signatures": list(module.SIGNATURES),
                   "weights_layout": module.layout(),
                   "preprocessing": None if preprocessing is None else preprocessing.to_json()},
        )
        module.metadata_json = json.dumps(info)
        content = convert(module)
        if verify_with_litert:
            verify(content, learner, task, query_size, verification_episode)
    write_model(path, content)
    return info
