"""On-device modules of the learners that adapt in one forward pass: Prototypical Networks,
Matching and Relation Networks, R2-D2 and Conditional Neural Processes.

Each keeps what the support set determines (prototypes, the support set's
embeddings and labels, ridge weights, a representation) as its device state
and runs the meta-learned networks with their weights as constants; nothing
is differentiated on the device.
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfmeta import losses, query_statistics
from tfmeta.exporters import adaptation_plan, builtin_grads, builtin_linalg
from tfmeta.exporters.device_state import (
    COMMON_SIGNATURES,
    DeviceModule,
    exact_size,
    nan_unless,
    weights_layout,
)
from tfmeta.exporters.graph_function import graph_function
from tfmeta.exporters.task_format import TaskFormat
from tfmeta.learners import r2d2
from tfmeta.learners.base import MetaLearner
from tfmeta.learners.conditional_neural_process import positive_stddev


class PrototypeDeviceModule(DeviceModule):
    """On-device Prototypical Networks: the device state is the `[ways, D]` prototypes, then
    the embedding's BatchNorm statistics (the support set's, after `train_step`, in
    `"support"` mode).

    The embedding network runs with its meta-learned weights as constants
    (through Keras; nothing is differentiated).
    """

    SIGNATURES = COMMON_SIGNATURES + ("infer", "adapt_and_predict", "train_step", "embed")

    def __init__(self, learner: MetaLearner, task: TaskFormat, query_size: int):
        model = learner.model

        @tf.autograph.experimental.do_not_convert
        def stateless_call(*args, **kwargs):  # a closure keeps the Keras model untracked
            return model.stateless_call(*args, **kwargs)

        def statistics(rows=None, replace_moving=False):
            return query_statistics.batch_statistics(model, rows, replace_moving)

        self._stateless_call = stateless_call
        self._statistics = statistics
        self._params = [v.numpy() for v in model.trainable_variables]
        self._mode = learner.query_statistics
        spec = model.compute_output_spec(keras.KerasTensor([1, *task.input_shape]))
        self._embedding_shape = tuple(spec.shape[1:])
        self._dim = int(np.prod(self._embedding_shape))
        self._state_layout = [(v.path, list(v.shape)) for v in model.non_trainable_variables]
        self._own_layout = self._own_state(task)
        super().__init__(
            [np.zeros(shape, np.float32) for _, shape in self._own_layout]
            + [v.numpy() for v in model.non_trainable_variables],
            task, query_size,
        )

    def _own_state(self, task: TaskFormat) -> list[tuple[str, list[int]]]:
        """The device state before the embedding's BatchNorm statistics: `(name, shape)`s."""
        return [("prototypes", [task.ways, self._dim])]

    def layout(self) -> list[dict[str, Any]]:
        return weights_layout([(name, shape, False) for name, shape in self._own_layout]
                              + [(path, shape, False) for path, shape in self._state_layout])

    def _embed(self, inputs: tf.Tensor, state: list, context=None) -> tf.Tensor:
        """Embeddings in inference mode, or under `context` (a `batch_statistics` switch)."""
        params = [tf.constant(v) for v in self._params]
        with context or contextlib.nullcontext():
            embeddings, _ = self._stateless_call(params, state, inputs, training=False)
        return tf.reshape(embeddings, [inputs.shape[0], self._dim])

    def _episode_statistics(self, support_size: int):
        """How BatchNorm normalises support and queries embedded in one batch: with the
        support rows' statistics, the whole batch's (transductive), or the moving ones."""
        if self._mode == query_statistics.SUPPORT:
            return self._statistics(rows=support_size)
        if self._mode == query_statistics.TRANSDUCTIVE:
            return self._statistics()
        return None

    def _support_state(self, support_x: tf.Tensor, state: list) -> list:
        """`state` with the support set's statistics as BatchNorm's moving ones."""
        params = [tf.constant(v) for v in self._params]
        with self._statistics(replace_moving=True):
            _, state = self._stateless_call(params, state, support_x, training=False)
        return list(state)

    # The head: what the support set determines (`_own_state`), and how queries are scored
    # with it. Subclasses replace these three; the signatures below serve every head.
    def _fit_head(self, embeddings: tf.Tensor, labels: tf.Tensor) -> list[tf.Tensor]:
        """The head state of `_own_state` fitted to support embeddings: the prototypes."""
        one_hot = tf.one_hot(labels, self._task.ways, dtype=tf.float32)
        sums = tf.matmul(one_hot, embeddings, transpose_a=True)
        return [sums / tf.maximum(tf.reduce_sum(one_hot, axis=0)[:, None], 1.0)]

    def _head_scores(self, queries: tf.Tensor, head: list[tf.Tensor]) -> tf.Tensor:
        """Query scores from the head state: negative squared distances to the prototypes."""
        differences = queries[:, None, :] - head[0][None, :, :]
        return -tf.reduce_sum(differences * differences, axis=-1)

    def _support_loss(self, labels: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
        """`train_step`'s loss of the support set scored by its own head."""
        return builtin_grads.sparse_softmax_cross_entropy(labels, scores)

    def signatures(self) -> dict[str, Any]:
        task, q, s = self._task, self._query_size, self._task.support_size
        heads = len(self._own_layout)
        initial_state = [tf.constant(v) for v in self._initial[heads:]]

        @graph_function(input_signature=[task.inputs_spec(s), task.targets_spec(s),
                                         task.inputs_spec(q)])
        def adapt_and_predict(support_x, support_y, query_x):
            support_x, support_y, valid = self._checked_support(support_x, support_y)
            inputs = tf.concat([support_x, exact_size(query_x)], 0)
            embeddings = self._embed(inputs, initial_state, self._episode_statistics(s))
            head = self._fit_head(embeddings[:s], support_y)
            return {"outputs": nan_unless(valid, self._head_scores(embeddings[s:], head))}

        @graph_function(input_signature=[task.inputs_spec(s), task.targets_spec(s)])
        def train_step(support_x, support_y):
            support_x, support_y, valid = self._checked_support(support_x, support_y)
            state = initial_state
            if self._mode == query_statistics.SUPPORT:
                state = self._support_state(support_x, state)
            context = self._statistics() if self._mode == query_statistics.TRANSDUCTIVE else None
            embeddings = self._embed(support_x, state, context)
            head = self._fit_head(embeddings, support_y)
            values = self._read()
            self._assign([tf.where(valid, new, old) for new, old in zip(head + state, values)])
            self.steps_taken.assign_add(tf.cast(valid, tf.int32))
            loss = self._support_loss(support_y, self._head_scores(embeddings, head))
            return {"loss": nan_unless(valid, loss)}

        @graph_function(input_signature=[task.inputs_spec(q)])
        def infer(query_x):
            values = self._read()
            context = self._statistics() if self._mode == query_statistics.TRANSDUCTIVE else None
            queries = self._embed(exact_size(query_x), values[heads:], context)
            return {"outputs": self._head_scores(queries, values[:heads])}

        @graph_function(input_signature=[task.inputs_spec(q)])
        def embed(inputs):
            return {"embeddings": self._embed(exact_size(inputs), initial_state)}

        return {"infer": infer, "adapt_and_predict": adapt_and_predict,
                "train_step": train_step, "embed": embed, **self._common_signatures()}


class SupportSetDeviceModule(PrototypeDeviceModule):
    """On-device Matching and Relation Networks: the device state is the support set's
    embeddings `[S, D]` and one-hot labels `[S, ways]` (after `train_step`), then the
    embedding's BatchNorm statistics as for Prototypical Networks.

    `adapt_and_predict` and `infer` run the learner's own `head` on them in the
    graph (cosine attention, or the relation module with its weights frozen
    into the converted model); `train_step`'s loss is the learner's task loss
    on the support set predicted from itself.
    """

    def __init__(self, learner: MetaLearner, task: TaskFormat, query_size: int):
        head = learner.head  # a closure keeps the learner untracked
        model = learner.model
        own_weights = learner.meta_variables[len(model.trainable_variables):]
        own_state = learner.state_variables[len(model.non_trainable_variables):]
        values = [v.numpy() for v in own_weights + own_state]

        def scores(support, labels, queries):
            # The head's own weights (relation module, FCE LSTMs) as constants: variables
            # that a converted signature reads would convert uninitialized.
            constants = [tf.constant(v) for v in values]
            shape = (-1, *self._embedding_shape)
            mapping = list(zip(own_weights + own_state, constants))
            with keras.StatelessScope(state_mapping=mapping):
                outputs, _ = head(tf.reshape(support, shape), labels,
                                  tf.reshape(queries, shape), task.ways,
                                  constants[len(own_weights):], False)
            return outputs

        self._scores = scores
        self._learner_loss = _builtin_task_loss(learner)
        super().__init__(learner, task, query_size)

    def _own_state(self, task: TaskFormat) -> list[tuple[str, list[int]]]:
        return [("support_embeddings", [task.support_size, self._dim]),
                ("support_labels", [task.support_size, task.ways])]

    def _fit_head(self, embeddings: tf.Tensor, labels: tf.Tensor) -> list[tf.Tensor]:
        return [embeddings, tf.one_hot(labels, self._task.ways, dtype=tf.float32)]

    def _head_scores(self, queries: tf.Tensor, head: list[tf.Tensor]) -> tf.Tensor:
        support, one_hot = head
        return self._scores(support, tf.argmax(one_hot, axis=-1, output_type=tf.int32), queries)

    def _support_loss(self, labels: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
        return self._learner_loss(labels, scores)


class RidgeDeviceModule(PrototypeDeviceModule):
    """On-device R2-D2: the device state is the head weights `[D + 1, ways]` fitted to the
    support set (`ridge_weights`, or `logistic_weights` for LR-D2; after `train_step`, zeros
    until then), then the embedding's BatchNorm statistics as for Prototypical Networks.

    The fit is the learner's own (`tfmeta.learners.r2d2.fit_head`, Woodbury
    form, the meta-learned penalty; the logistic head's Newton steps
    unrolled) with its `S x S` systems solved by an unrolled Cholesky
    factorization in builtin ops (`builtin_linalg`; in each Newton step, the
    classes' systems as one batch). Scores are `scale * [q, 1] W + bias`.
    """

    def __init__(self, learner: MetaLearner, task: TaskFormat, query_size: int):
        self._l2 = float(learner.l2.numpy())
        self._scale = float(learner.scale.numpy())
        self._bias = float(learner.bias.numpy())
        self._head_kind, self._newton_steps = learner.head_kind, learner.newton_steps
        super().__init__(learner, task, query_size)

    def _own_state(self, task: TaskFormat) -> list[tuple[str, list[int]]]:
        return [(f"{self._head_kind}_weights", [self._dim + 1, task.ways])]

    @staticmethod
    def _with_ones(features: tf.Tensor) -> tf.Tensor:
        return tf.concat([features, tf.ones([features.shape[0], 1], features.dtype)], axis=1)

    def _fit_head(self, embeddings: tf.Tensor, labels: tf.Tensor) -> list[tf.Tensor]:
        targets = tf.one_hot(labels, self._task.ways, dtype=tf.float32)
        return [r2d2.fit_head(self._with_ones(embeddings), targets, self._l2, self._head_kind,
                              self._newton_steps, solve=builtin_linalg.cholesky_solve)]

    def _head_scores(self, queries: tf.Tensor, head: list[tf.Tensor]) -> tf.Tensor:
        return self._scale * tf.matmul(self._with_ones(queries), head[0]) + self._bias


def _builtin_task_loss(learner: MetaLearner):
    """`fn(labels, scores)`: the learner's task loss in builtin ops.

    Raises:
        ValueError: for a loss other than sparse cross-entropy from logits, MSE
            or `tfmeta.losses.OneHotMeanSquaredError`.
    """
    if isinstance(learner.loss, losses.OneHotMeanSquaredError):
        return lambda labels, scores: tf.reduce_mean(learner.loss.call(labels, scores))
    if adaptation_plan.loss_kind(learner) == adaptation_plan.CROSS_ENTROPY:
        return builtin_grads.sparse_softmax_cross_entropy
    raise ValueError(
        "Expected a classification task loss for on-device support-set learners: "
        "SparseCategoricalCrossentropy(from_logits=True) or "
        f"tfmeta.losses.OneHotMeanSquaredError(). Received: loss={learner.loss!r}"
    )


class NeuralProcessDeviceModule(DeviceModule):
    """On-device Conditional Neural Processes: the device state is the task representation `r`
    (the mean encoding of the context set, after `train_step`; zeros until then).

    Encoder and decoder run with their meta-learned weights as constants
    (through Keras; nothing is differentiated). `adapt_and_predict` and
    `infer` return `[Q, y_dim, 2]` (mean, standard deviation); `train_step`'s
    loss is the Gaussian NLL of the context targets under the new
    representation.
    """

    SIGNATURES = COMMON_SIGNATURES + ("infer", "adapt_and_predict", "train_step")

    def __init__(self, learner: MetaLearner, task: TaskFormat, query_size: int):
        self._encode = self._constant_call(learner.encoder)
        self._decode = self._constant_call(learner.decoder)
        self._min_stddev, self._y_dim = learner.min_stddev, learner.y_dim
        self._dim = int(learner.encoder.outputs[0].shape[-1])
        super().__init__([np.zeros([self._dim], np.float32)], task, query_size)

    @staticmethod
    def _constant_call(model: keras.Model):
        """`fn(inputs)`: `model` in inference mode with its current weights as constants.

        (A closure keeps the Keras model untracked by the module.)
        """
        params = [v.numpy() for v in model.trainable_variables]
        state = [v.numpy() for v in model.non_trainable_variables]

        @tf.autograph.experimental.do_not_convert
        def call(inputs):
            outputs, _ = model.stateless_call([tf.constant(v) for v in params],
                                              [tf.constant(v) for v in state], inputs,
                                              training=False)
            return outputs

        return call

    def layout(self) -> list[dict[str, Any]]:
        return weights_layout([("representation", [self._dim], False)])

    def _representation(self, support_x: tf.Tensor, support_y: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(self._encode(tf.concat([support_x, support_y], axis=-1)), axis=0)

    def _predict(self, representation: tf.Tensor, query_x: tf.Tensor) -> tf.Tensor:
        tiled = tf.tile(representation[tf.newaxis], [query_x.shape[0], 1])
        outputs = self._decode(tf.concat([tiled, query_x], axis=-1))
        stddev = positive_stddev(outputs[:, self._y_dim:], self._min_stddev)
        return tf.stack([outputs[:, : self._y_dim], stddev], axis=-1)

    @staticmethod
    def _negative_log_likelihood(targets: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
        mean, stddev = predictions[..., 0], predictions[..., 1]
        per_dimension = (0.5 * tf.square((targets - mean) / stddev) + tf.math.log(stddev)
                         + 0.5 * float(np.log(2 * np.pi)))
        return tf.reduce_mean(tf.reduce_sum(per_dimension, axis=-1))

    def signatures(self) -> dict[str, Any]:
        task, q, s = self._task, self._query_size, self._task.support_size

        @graph_function(input_signature=[task.inputs_spec(s), task.targets_spec(s),
                                         task.inputs_spec(q)])
        def adapt_and_predict(support_x, support_y, query_x):
            support_x, support_y, _ = self._checked_support(support_x, support_y)
            representation = self._representation(support_x, support_y)
            return {"outputs": self._predict(representation, exact_size(query_x))}

        @graph_function(input_signature=[task.inputs_spec(s), task.targets_spec(s)])
        def train_step(support_x, support_y):
            support_x, support_y, _ = self._checked_support(support_x, support_y)
            representation = self._representation(support_x, support_y)
            self._assign([representation])
            self.steps_taken.assign_add(1)
            predictions = self._predict(representation, support_x)
            return {"loss": self._negative_log_likelihood(support_y, predictions)}

        @graph_function(input_signature=[task.inputs_spec(q)])
        def infer(query_x):
            return {"outputs": self._predict(self._read()[0], exact_size(query_x))}

        return {"infer": infer, "adapt_and_predict": adapt_and_predict,
                "train_step": train_step, **self._common_signatures()}
