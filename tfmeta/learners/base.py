"""`MetaLearner`: the Keras plumbing every learner shares.

A learner is a `keras.Model` that wraps a built Keras model (the one being
meta-learned). `fit` feeds it meta-batches of episodes (see
`tfmeta.data.episode`); its `train_step` adapts to every task of the batch
inside one `tf.function` (`tf.map_fn` over tasks), averages the per-task
meta-gradients and applies them with the compiled optimizer. `evaluate`
reports the query loss and metrics after adaptation, and the query loss
before adaptation for comparison. Subclasses say how one task adapts and
predicts (`adapt_and_predict`) and which variables are meta-learned.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras
import tensorflow as tf

from tfmeta import adaptation, fused_batch_norm
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.argument_validation import check_integer, check_learning_rate
from tfmeta.data import episode as episode_lib

_PRE_ADAPTATION_LOSS = "pre_adaptation_loss"
DEFAULT_PARALLEL_TASKS = 10  # tf.map_fn's own default
# Settings read while a step is traced: setting one after `fit`, `evaluate` or `predict` has
# compiled its function must retrace it, or the change would be silently ignored.
_TRACED_SETTINGS = frozenset({
    "query_statistics", "parallel_tasks", "inner_steps", "eval_inner_steps",
    "inner_learning_rate", "eval_inner_learning_rate", "first_order", "ways",
})


def set_inner_loop(
    learner: keras.Model,
    inner_learning_rate: Any,
    inner_steps: Any,
    eval_inner_learning_rate: Any = None,
    eval_inner_steps: Any = None,
) -> None:
    """Checks and sets a learner's inner-loop settings; evaluation defaults to training's."""
    learner.inner_learning_rate = check_learning_rate("inner_learning_rate", inner_learning_rate)
    learner.inner_steps = check_integer("inner_steps", inner_steps, minimum=0)
    learner.eval_inner_learning_rate = check_learning_rate(
        "eval_inner_learning_rate",
        inner_learning_rate if eval_inner_learning_rate is None else eval_inner_learning_rate,
    )
    learner.eval_inner_steps = check_integer(
        "eval_inner_steps", inner_steps if eval_inner_steps is None else eval_inner_steps,
        minimum=0,
    )


def _seed_offset(value: tf.Tensor, task_index: tf.Tensor) -> tf.Tensor:
    """The offset `[task_index, 0]` of a seed-generator state, in its dtype."""
    return tf.cast(tf.stack([task_index, 0]), value.dtype)


def _is_seed_state(value: tf.Tensor) -> bool:
    return value.dtype.is_integer and value.shape == (2,)


def _task_state(state: adaptation.Weights, task_index: tf.Tensor) -> adaptation.Weights:
    """Gives each task its own random stream.

    Keras seed-generator states are integer `[seed, counter]` pairs; offsetting
    the seed by the task index gives every task of a meta-batch its own
    Dropout masks. Float states (BatchNorm statistics) are shared.
    """
    return [
        value + _seed_offset(value, task_index) if _is_seed_state(value) else value
        for value in state
    ]


def _merge_task_states(stacked: adaptation.Weights, first_task: tf.Tensor) -> adaptation.Weights:
    """Reduces per-task states to one.

    Float states: the mean over tasks, and over the replicas of a
    distribution strategy. Integer states: the first task's, without its seed
    offset (the same on every replica).
    """
    merged = []
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    for value in stacked:
        if value.dtype.is_floating:
            value = tf.reduce_mean(value, axis=0)
            if replicas > 1:
                value = tf.distribute.get_replica_context().all_reduce("MEAN", value)
        elif _is_seed_state(value[0]):
            value = value[0] - _seed_offset(value[0], first_task)
        else:
            value = value[0]
        merged.append(value)
    return merged


def _task_indices(num_tasks: tf.Tensor) -> tf.Tensor:
    """Global indices of this replica's tasks (`0..T-1` without tf.distribute).

    Each replica of a distribution strategy holds an equal share of the
    meta-batch; numbering tasks globally gives every task the same random
    stream (Dropout masks) as on one device.
    """
    context = tf.distribute.get_replica_context()
    replica = 0 if context is None else context.replica_id_in_sync_group
    first = tf.cast(replica, tf.int32) * num_tasks
    return tf.range(first, first + num_tasks)


def _logs_for_distribution(logs: dict, strategy: tf.distribute.Strategy) -> dict:
    """Step logs in a shape Keras can reduce across workers.

    Keras (3.15) reduces logs of a `MultiWorkerMirroredStrategy` run with
    `strategy.reduce("MEAN", value, axis=0)`, which needs an axis: give each
    scalar one. Other strategies get the logs unchanged.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def _check_one_input_and_output(model: keras.Model) -> None:
    """Raises a ValueError unless a model with symbolic inputs/outputs has one of each.

    Episodes carry one input tensor per example (`support_x`, `query_x`) and
    one target tensor, which the task loss compares with one prediction.
    """
    for kind in ("inputs", "outputs"):
        try:
            tensors = getattr(model, kind)
        except (AttributeError, ValueError):  # a subclassed model: checked when it runs
            continue
        if tensors is not None and len(tensors) != 1:
            names = [getattr(tensor, "name", "?") for tensor in tensors]
            raise ValueError(
                f"Expected a model with one input and one output tensor (episodes carry one "
                f"`support_x`/`query_x` and one target per example). Received: model "
                f"'{model.name}' with {len(tensors)} {kind} {names}; wrap the one to "
                f"meta-learn, e.g. keras.Model(model.inputs[0], model.outputs[0])"
            )


def _query_targets(x, y):
    """`y`, or the `query_y` of the episodes `x` when Keras hands no separate targets."""
    if y is None and isinstance(x, Mapping):
        return x[episode_lib.QUERY_Y]
    return y


def _episodes_of(data, learner: "MetaLearner") -> dict[str, tf.Tensor]:
    """The meta-batch in what Keras hands a step: the element itself, or `(element,)`
    from `*_on_batch` calls; checked by the learner (`MetaLearner.checked_episodes`)."""
    episodes, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return learner.checked_episodes(episodes)


class MetaLearner(keras.Model):
    """Base class of the learners: wraps a built Keras model and meta-trains it.

    Args:
        model: a built `keras.Model` mapping a batch of inputs to predictions.
        query_statistics: which statistics BatchNorm normalises query inputs
            with (`tfmeta.query_statistics`): `"support"` (the support set's,
            so each query's prediction is independent of the other queries),
            `"transductive"` (the query batch's own, the convention of Finn et
            al. 2017 and learn2learn) or `"moving"` (moving statistics).
            Dropout is off in evaluation and prediction in every mode.
        parallel_tasks: tasks of a meta-batch adapted concurrently (the
            `parallel_iterations` of the `tf.map_fn` over tasks). Peak memory
            grows with it; 1 adapts one task at a time.
        **kwargs: forwarded to `keras.Model`.

    XLA is off unless asked for: `compile(jit_compile="auto")`, Keras's
    default, does not turn it on for learners (on GPUs Keras would), since
    XLA drops the in-graph meta-batch value checks. Every learner compiles
    with `jit_compile=True` except where `xla_unsupported()` says why
    (`ProtoNet(ways=None)`), which `compile` then raises.

    Subclass it to write a learner: `adapt_and_predict` (one task: adapt
    to the support set, predict the queries) is the one hook to implement;
    `meta_variables`, `state_variables`, `predict_without_adaptation`,
    `task_meta_gradients` and `_prediction_spec` are the others (README,
    "Writing your own learner").
    """

    def __init__(
        self,
        model: keras.Model,
        query_statistics: str = query_statistics_lib.SUPPORT,
        parallel_tasks: int = DEFAULT_PARALLEL_TASKS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        adaptation.check_built(model)
        _check_one_input_and_output(model)
        self.model = model
        self.query_statistics = query_statistics_lib.check_mode(query_statistics)
        self.parallel_tasks = check_integer("parallel_tasks", parallel_tasks)
        self.pre_adaptation_loss_tracker = keras.metrics.Mean(name=_PRE_ADAPTATION_LOSS)
        self.built = True

    # Whether the learner handles padded episodes (`support_mask`, `query_mask`);
    # the others refuse them with one ValueError (`tfmeta.data.episode`).
    accepts_padded_episodes = False

    def __setattr__(self, name: str, value) -> None:
        """Retraces compiled steps when a setting they read changes (`_TRACED_SETTINGS`)."""
        super().__setattr__(name, value)
        if name in _TRACED_SETTINGS and "predict_function" in self.__dict__:
            self.train_function = self.test_function = self.predict_function = None

    # ----------------------------------------------------------------- hooks
    @property
    def meta_variables(self) -> list:
        """The variables the outer loop updates (default: the model's trainable ones).

        They must be trainable variables tracked by the learner (the wrapped
        model's, or the learner's own such as learned learning rates).
        """
        return list(self.model.trainable_variables)

    @property
    def state_variables(self) -> list:
        """The non-trainable state threaded through each task, starting with the model's own.

        The default is `model.non_trainable_variables`. A learner may append
        state of its own (MAML's per-step BatchNorm statistics); the hooks then
        receive and return the longer list, and the train step writes the
        per-task mean back to these variables.
        """
        return list(self.model.non_trainable_variables)

    def adapt_and_predict(
        self, task: dict[str, tf.Tensor], state: adaptation.Weights, training: bool
    ) -> tuple[tf.Tensor, adaptation.Weights]:
        """Adapts to one task's support set and predicts its query inputs.

        Args:
            task: one episode (no task axis).
            state: the values of `state_variables` to start from.
            training: True in meta-training, False in evaluation (learners use
                their evaluation inner steps and learning rates then).

        Returns:
            `(query_predictions, new_state)`, differentiable w.r.t.
            `meta_variables` when read under a tape.
        """
        raise NotImplementedError

    def predict_without_adaptation(
        self, task: dict[str, tf.Tensor], state: adaptation.Weights
    ) -> tf.Tensor | None:
        """Query predictions of the meta-learned model before adaptation.

        Returns None where the model's outputs before adaptation are no
        predictions (Prototypical Networks, the fine-tuning baseline); `evaluate`
        then reports no `pre_adaptation_loss`.
        """
        params, _ = adaptation.initial_weights(self.model)
        outputs, _ = query_statistics_lib.predict_queries(
            self.model,
            params,
            self.model_state(state),
            task[episode_lib.SUPPORT_X],
            task[episode_lib.QUERY_X],
            mode=self.query_statistics,
            training=False,
        )
        return outputs

    def model_state(self, state: adaptation.Weights) -> adaptation.Weights:
        """The part of `state` (values of `state_variables`) that belongs to the wrapped model."""
        return list(state[: len(self.model.non_trainable_variables)])

    def read_state(self) -> adaptation.Weights:
        """The current values of `state_variables`, as tensors."""
        return [tf.convert_to_tensor(v.value) for v in self.state_variables]

    def checked_episodes(self, episodes: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The meta-batch's four tensors, checked for this learner (`tfmeta.data.episode`).

        Static shapes are checked now (inputs of the wrapped model's input
        shape), values in the graph (finite inputs, class ids that fit the
        predictions). Learners whose wrapped model does not take the episode
        inputs directly (the Conditional Neural Process) override it.
        """
        episodes = episode_lib.validate_meta_batch(
            episodes, self.model, padded=self.accepts_padded_episodes
        )
        return episode_lib.check_meta_batch_values(episodes, self._prediction_spec(episodes))

    def xla_unsupported(self) -> str | None:
        """Why this learner cannot run under XLA (`compile(jit_compile=True)`); None if it can.

        Learners whose graphs need shapes XLA cannot know at compile time
        override this; `compile(jit_compile=True)` then raises with the reason.
        """
        return None

    # ----------------------------------------------------------- Keras API
    def _resolve_auto_jit_compile(self) -> bool:
        """`jit_compile="auto"` (Keras's default, XLA on GPUs) means off for learners.

        XLA ignores `Assert` ops, so the meta-batch value checks
        (`tfmeta.data.episode`) would vanish, and it compiles unrolled inner
        loops for minutes; `compile(jit_compile=True)` opts in.
        """
        return False

    @property
    def jit_compile(self) -> bool:
        """Whether steps run under XLA; setting True raises if `xla_unsupported()` says why not."""
        return keras.Model.jit_compile.fget(self)

    @jit_compile.setter
    def jit_compile(self, value: bool) -> None:
        reason = self.xla_unsupported() if value else None
        if reason:
            raise ValueError(
                f"Expected a learner that XLA can compile for jit_compile=True. Received: "
                f"{type(self).__name__}, which cannot: {reason}; compile with jit_compile=False"
            )
        keras.Model.jit_compile.fset(self, value)

    def make_train_function(self, force: bool = False):
        """Keras's, with the optimizer's slots made first, eagerly.

        Without a distribution strategy Keras builds the optimizer inside the
        first traced step, and a `tf.function` whose first trace creates
        variables traces a second time: a second-order meta-step would be
        traced twice (seconds each).
        """
        if self.optimizer is not None:
            with self.distribute_strategy.scope():
                self._build_optimizer()
        return super().make_train_function(force)

    def _build_optimizer(self) -> None:
        """Makes the optimizer's slots, in the order of `trainable_variables` (as
        `keras.saving` rebuilds them), unless made already."""
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def _build_compiled_metrics(self, data: Any) -> None:
        """Builds the compiled metrics from the shapes of `data`, before a step is traced.

        Keras (without a distribution strategy) builds them inside the first
        traced step, which then traces twice, as for the optimizer's slots
        (`make_train_function`). Data whose shapes are not at hand (a Python
        generator) or that the model refuses leaves them to Keras, and the
        step's own checks report what is wrong.
        """
        metrics = self._compile_metrics
        if metrics is None or metrics.built:
            return
        try:
            spec = (data.element_spec if isinstance(data, tf.data.Dataset)
                    else tf.nest.map_structure(tf.type_spec_from_value, data))
            episodes, _, _ = keras.utils.unpack_x_y_sample_weight(spec)
            targets = episodes[episode_lib.QUERY_Y]
            prediction = self._prediction_spec(episodes)
        except (TypeError, ValueError, KeyError):
            return
        with self.distribute_strategy.scope():
            metrics.build(
                keras.KerasTensor(targets.shape, dtype=targets.dtype.name),
                keras.KerasTensor((targets.shape[0], *prediction.shape),
                                  dtype=prediction.dtype.name),
            )

    def fit(self, x=None, *args, **kwargs):
        """Keras's `fit`; a meta-batch that fails a value check raises one `EpisodeError`."""
        self._build_compiled_metrics(x)
        with episode_lib.episode_errors():
            return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """Keras's `evaluate`; a meta-batch that fails a value check raises one `EpisodeError`."""
        self._build_compiled_metrics(x)
        with episode_lib.episode_errors():
            return super().evaluate(x, *args, **kwargs)

    def predict(self, *args, **kwargs):
        """Keras's `predict`; a meta-batch that fails a value check raises one `EpisodeError`."""
        with episode_lib.episode_errors():
            return super().predict(*args, **kwargs)

    def train_on_batch(self, x=None, *args, **kwargs):
        """Keras's `train_on_batch`, with failed episode checks as one `EpisodeError`."""
        self._build_compiled_metrics(x)
        with episode_lib.episode_errors():
            return super().train_on_batch(x, *args, **kwargs)

    def test_on_batch(self, x=None, *args, **kwargs):
        """Keras's `test_on_batch`, with failed episode checks as one `EpisodeError`."""
        self._build_compiled_metrics(x)
        with episode_lib.episode_errors():
            return super().test_on_batch(x, *args, **kwargs)

    def predict_on_batch(self, *args, **kwargs):
        """Keras's `predict_on_batch`, with failed episode checks as one `EpisodeError`."""
        with episode_lib.episode_errors():
            return super().predict_on_batch(*args, **kwargs)

    def call(self, inputs, training=False):
        """Predicts with the meta-learned model, or adapts and predicts episodes.

        Args:
            inputs: inputs of the wrapped model (predicted without
                adaptation), or a meta-batch of episodes (each task adapts to
                its support set; returns the stacked query predictions).
            training: the wrapped model's `training` flag (plain inputs only).
        """
        if isinstance(inputs, Mapping):
            return self.predict_step(inputs)
        return self.model(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The task loss of query predictions (`y` defaults to the episodes' `query_y`).

        Keras calls this (and `compute_metrics`) with one batch to build the
        compiled loss and metrics before distributed training; episodes
        carry their targets inside `x`.
        """
        del sample_weight, training
        return self.task_loss(_query_targets(x, y), y_pred)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Builds compiled metrics from one replica's batch under tf.distribute.

        Keras (3.15) averages a whole data batch over the replicas to get
        shapes for building, which `MultiWorkerMirroredStrategy` cannot do for
        a dict of episodes; the first replica's batch has the same shapes.
        """
        if iterator is not None:
            strategy = self.distribute_strategy
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0], next(batches)
                )
                break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics on query predictions; `y` defaults to `query_y`."""
        return super().compute_metrics(x, _query_targets(x, y), y_pred, sample_weight)

    def query_loss(self, task: Mapping[str, tf.Tensor], predictions: tf.Tensor) -> tf.Tensor:
        """The task loss of one task's query predictions, over its real queries only.

        Without a `query_mask` this is `task_loss(query_y, predictions)`; with
        one (padded episodes), the mean of the per-query losses of the
        queries the mask keeps, which equals the loss of the unpadded task.
        """
        targets = task[episode_lib.QUERY_Y]
        mask = task.get(episode_lib.QUERY_MASK)
        if mask is None:
            return self.task_loss(targets, predictions)
        values = tf.cast(self._per_example_loss(targets, predictions), predictions.dtype)
        per_query = tf.reduce_mean(tf.reshape(values, [tf.shape(mask)[0], -1]), axis=1)
        weights = tf.cast(mask, per_query.dtype)
        return tf.reduce_sum(per_query * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

    @property
    def task_loss(self) -> adaptation.LossFn:
        """The compiled task loss as `fn(y_true, y_pred) -> scalar`.

        The loss given to `compile` serves the inner loop (support loss) and
        the outer loop (query loss); it is averaged over a task's examples.
        """
        per_example_loss = self._per_example_loss
        return lambda y_true, y_pred: tf.cast(
            tf.reduce_mean(per_example_loss(y_true, y_pred)), y_pred.dtype
        )

    @property
    def _per_example_loss(self) -> adaptation.LossFn:
        """The compiled loss as `fn(y_true, y_pred) -> per-example values` (no reduction)."""
        if not self.compiled or self.loss is None:
            raise ValueError(
                f"{type(self).__name__} needs a task loss: call "
                "`compile(optimizer, loss=...)` before training, evaluating or adapting, "
                "e.g. `loss='mse'` or "
                "`loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)`."
            )
        loss = keras.losses.get(self.loss)
        # A `keras.losses.Loss` object's `__call__` casts to its own dtype and,
        # under tf.distribute, divides by the replica count; its `call` gives
        # the plain per-example values, in the predictions' dtype.
        return loss.call if isinstance(loss, keras.losses.Loss) else loss

    def compute_meta_gradients(
        self, episodes: dict[str, tf.Tensor]
    ) -> tuple[tf.Tensor, list, tf.Tensor, adaptation.Weights]:
        """Adapts to every task of a meta-batch and returns the meta-gradients.

        Args:
            episodes: a meta-batch (leading task axis).

        Returns:
            `(meta_loss, gradients, query_predictions, new_state)`: the query
            loss averaged over tasks, its gradients w.r.t. `meta_variables`
            averaged over tasks, the stacked query predictions and the
            non-trainable state to keep.
        """
        episodes = episode_lib.validate_meta_batch(episodes, padded=self.accepts_padded_episodes)
        meta_variables = self.meta_variables
        state = self.read_state()

        def task_gradients(elems):
            task, task_index = elems
            loss, predictions, grads, new_state = self.task_meta_gradients(
                task, _task_state(state, task_index)
            )
            return loss, predictions, grads, new_state

        prediction_spec = self._prediction_spec(episodes)
        signature = (
            tf.TensorSpec([], prediction_spec.dtype),
            prediction_spec,
            [tf.TensorSpec(v.shape, v.dtype) for v in meta_variables],
            [tf.TensorSpec(s.shape, s.dtype) for s in state],
        )
        task_indices = _task_indices(tf.shape(episodes[episode_lib.SUPPORT_X])[0])
        with self.batch_norm_kernel(training=True):
            losses, predictions, grads, states = self._map_tasks(
                task_gradients, episodes, task_indices, signature
            )
        grads = [tf.reduce_mean(g, axis=0) for g in grads]
        return (
            tf.reduce_mean(losses),
            grads,
            predictions,
            _merge_task_states(states, task_indices[0]),
        )

    def task_meta_gradients(
        self, task: dict[str, tf.Tensor], state: adaptation.Weights
    ) -> tuple[tf.Tensor, tf.Tensor, list, adaptation.Weights]:
        """One task's query loss, predictions, meta-gradients and new state.

        The default differentiates the query loss after `adapt_and_predict`
        w.r.t. `meta_variables`; Reptile overrides it.
        """
        meta_variables = self.meta_variables
        with tf.GradientTape() as tape:
            predictions, state = self.adapt_and_predict(task, state, training=True)
            loss = self.query_loss(task, predictions)
        grads = tape.gradient(
            loss, meta_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return loss, predictions, grads, state

    def train_step(self, data):
        episodes = _episodes_of(data, self)
        loss, grads, predictions, state = self.compute_meta_gradients(episodes)
        # Under tf.distribute each replica adapts its share of the tasks and the
        # optimizer sums the replicas' gradients: divide by the replica count so
        # the update uses the mean over the global meta-batch.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            grads = [g / replicas for g in grads]
        self._build_optimizer()  # a step traced outside `fit` and `train_on_batch`
        with tf.control_dependencies([loss]):  # the step counter too waits for the batch's checks
            self.optimizer.apply(grads, self.meta_variables)
        for variable, value in zip(self.state_variables, state):
            variable.assign(value)
        return _logs_for_distribution(
            self._training_logs(loss, episodes, predictions), self.distribute_strategy
        )

    def _training_logs(self, loss, episodes, predictions) -> dict:
        """A meta-training step's logs: the query loss and the compiled metrics."""
        logs = self._update_metrics(loss, episodes, predictions)
        logs.pop(_PRE_ADAPTATION_LOSS, None)
        return logs

    def query_scores(self, episodes: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Adapts to every task (evaluation inner loop) and scores its queries; no side effects.

        Args:
            episodes: a checked meta-batch (leading task axis).

        Returns:
            Per task: `loss` (query loss after adaptation, `[T]`) and
            `predictions` (`[T, Q, ...]`), plus `pre_adaptation_loss` and
            `pre_adaptation_predictions` where the learner predicts before
            adapting (see `predict_without_adaptation`).
        """
        state = self.read_state()
        has_pre_adaptation = []  # filled while map_fn traces `score_task`

        def score_task(elems):
            task, task_index = elems
            task_state = _task_state(state, task_index)
            predictions, _ = self.adapt_and_predict(task, task_state, training=False)
            loss = self.query_loss(task, predictions)
            before = self.predict_without_adaptation(task, task_state)
            has_pre_adaptation.append(before is not None)
            if before is None:  # map_fn needs a fixed signature: repeat the adapted ones
                return loss, loss, predictions, predictions
            pre_loss = self.query_loss(task, before)
            return loss, pre_loss, predictions, before

        prediction_spec = self._prediction_spec(episodes)
        loss_spec = tf.TensorSpec([], prediction_spec.dtype)
        signature = (loss_spec, loss_spec, prediction_spec, prediction_spec)
        num_tasks = tf.shape(episodes[episode_lib.SUPPORT_X])[0]
        with self.batch_norm_kernel(training=False):
            losses, pre_losses, predictions, pre_predictions = self._map_tasks(
                score_task, episodes, _task_indices(num_tasks), signature
            )
        scores = {"loss": losses, "predictions": predictions}
        if all(has_pre_adaptation):
            scores[_PRE_ADAPTATION_LOSS] = pre_losses
            scores["pre_adaptation_predictions"] = pre_predictions
        return scores

    def test_step(self, data):
        episodes = _episodes_of(data, self)
        scores = self.query_scores(episodes)
        if _PRE_ADAPTATION_LOSS in scores:
            self.pre_adaptation_loss_tracker.update_state(scores[_PRE_ADAPTATION_LOSS])
        logs = self._update_metrics(tf.reduce_mean(scores["loss"]), episodes, scores["predictions"])
        if _PRE_ADAPTATION_LOSS not in scores:
            logs.pop(_PRE_ADAPTATION_LOSS, None)
        return _logs_for_distribution(logs, self.distribute_strategy)

    def predict_step(self, data):
        """Adapts to each task of a meta-batch and returns its query predictions."""
        episodes = _episodes_of(data, self)
        state = self.read_state()

        def predict_task(elems):
            task, task_index = elems
            predictions, _ = self.adapt_and_predict(
                task, _task_state(state, task_index), training=False
            )
            return predictions

        num_tasks = tf.shape(episodes[episode_lib.SUPPORT_X])[0]
        with self.batch_norm_kernel(training=False):
            return self._map_tasks(
                predict_task, episodes, _task_indices(num_tasks), self._prediction_spec(episodes)
            )

    def _fused_batch_norm_is_exact(self, training: bool) -> bool:
        """Whether TF's fused BatchNorm kernel leaves this step's results exact.

        The kernel's second-order gradient is wrong and its batch statistics
        carry no gradient (see `tfmeta.fused_batch_norm`). Evaluation and
        prediction differentiate BatchNorm at most once (the inner loop's
        gradients), so they are always exact. Meta-training is exact when the
        meta-gradient is first order and no loss reads updated moving
        statistics; learners for which that holds override this.
        """
        return not training

    def batch_norm_kernel(self, training: bool):
        """How the model's BatchNorm layers compute while a step is traced (a context).

        TF's fused kernel where it is exact; otherwise (meta-training with
        second-order meta-gradients) `query_statistics.batch_statistics`,
        whose batch statistics have exact second derivatives, unlike those
        of Keras's BatchNorm. The SavedModel exporter traces adaptation
        under `batch_norm_kernel(training=False)`, so a served prediction
        rounds as the learner's `predict` does, step for step.
        """
        if self._fused_batch_norm_is_exact(training):
            return fused_batch_norm.fused_batch_norm(self.model)
        return query_statistics_lib.batch_statistics(self.model)

    def _map_tasks(self, fn, episodes, task_indices, signature):
        """`fn((task, task_index))` for every task of the meta-batch, stacked."""
        return tf.map_fn(
            fn,
            (episodes, task_indices),
            fn_output_signature=signature,
            parallel_iterations=self.parallel_tasks,
        )

    def _update_metrics(self, loss, episodes, predictions) -> dict:
        """Updates the loss tracker and the compiled metrics, on the real queries only.

        Padded queries are dropped rather than weighted zero: Keras applies
        sample weights to `weighted_metrics` only, not to `metrics`.
        """
        self._loss_tracker.update_state(loss)
        targets = episodes[episode_lib.QUERY_Y]
        mask = episodes.get(episode_lib.QUERY_MASK)
        if mask is not None:
            targets, predictions = (tf.boolean_mask(t, mask) for t in (targets, predictions))
        return self.compute_metrics(None, targets, predictions)

    def _prediction_spec(self, episodes: dict[str, tf.Tensor]) -> tf.TensorSpec:
        """The spec of one task's query predictions (static where the model tells it).

        The default is the wrapped model's output spec on the query inputs;
        learners whose predictions are not the model's outputs override it.
        """
        query_x = episodes[episode_lib.QUERY_X]
        spec = self.model.compute_output_spec(
            keras.KerasTensor(query_x.shape[1:], dtype=query_x.dtype.name)
        )
        if not isinstance(spec, keras.KerasTensor):
            raise ValueError(
                "Expected a model that returns one tensor (the task loss compares one "
                f"prediction with the targets). Received: model '{self.model.name}' returning "
                f"{type(spec).__name__} {spec}; return one tensor from its call"
            )
        return tf.TensorSpec(spec.shape, spec.dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            model=keras.saving.serialize_keras_object(self.model),
            query_statistics=self.query_statistics,
            parallel_tasks=self.parallel_tasks,
        )
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        if "transductive" in config:  # saved before `query_statistics` replaced the flag
            transductive = config.pop("transductive")
            config["query_statistics"] = (
                query_statistics_lib.TRANSDUCTIVE if transductive else query_statistics_lib.MOVING
            )
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects
        )
        return cls(**config)
