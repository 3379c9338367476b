"""Model-Agnostic Meta-Learning (Finn et al. 2017), first and second order, with MAML++ options."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import adaptation
from tfmeta import query_statistics as query_statistics_lib
from tfmeta.argument_validation import check_choice, check_integer
from tfmeta.learners import padded_episodes
from tfmeta.learners.gradient_learner import GradientLearner

PER_LAYER_PER_STEP = "per_layer_per_step"
PER_PARAMETER = "per_parameter"
LEARNED_RATE_KINDS = (None, PER_LAYER_PER_STEP, PER_PARAMETER)
LEARNED_HEAD = "learned"
ZERO_HEAD = "zeros"
HEAD_INITIALIZATIONS = (LEARNED_HEAD, ZERO_HEAD)
_MIN_INTERMEDIATE_WEIGHT = 0.03  # times 1/steps: MAML++'s floor for the non-final step losses


def learning_rate_variable(
    owner: keras.Layer, weight: keras.Variable, shape: tuple, value: float
) -> keras.Variable:
    """A learned inner step size of `owner` for `weight`: `value` everywhere, rounded once to
    the weight's dtype (no float32 detour), named after the weight."""
    return owner.add_weight(
        shape=shape,
        dtype=weight.dtype,
        initializer=lambda shape, dtype: tf.fill(shape, tf.constant(value, dtype)),
        name="inner_learning_rate_" + weight.path.replace("/", "_"),
    )


@keras.saving.register_keras_serializable(package="tfmeta")
class MAML(GradientLearner):
    """MAML: meta-learns an initialization that adapts by gradient descent.

    For each task the inner loop takes `inner_steps` SGD steps on the support
    loss from the meta-learned weights; the outer loop (the compiled
    optimizer) updates those initial weights with the gradient of the query
    loss after adaptation, differentiated through the inner loop (second
    order) or with the inner gradients held constant (`first_order=True`,
    FOMAML).

    The MAML++ options of Antoniou et al. (2019), all off by default:

    - `multi_step_loss`: the meta-loss is a weighted sum of the query losses
      after every inner step. The weights start uniform (`1/steps`); over
      `multi_step_loss_iterations` optimizer iterations the non-final ones
      decay linearly to `0.03/steps` while the final one grows, and from then
      on only the final step counts (the schedule of the authors' code, with
      epochs replaced by iterations). Evaluation reports the final query loss.
    - `learned_inner_learning_rates="per_layer_per_step"` (LSLR): one learned
      scalar inner learning rate per weight tensor and per inner step,
      initialised to `inner_learning_rate` and meta-learned with the
      weights. Evaluation steps beyond `inner_steps` reuse the last step's
      rates. (`"per_parameter"` is Meta-SGD, see `tfmeta.MetaSGD`.) Learned
      rates replace `inner_learning_rate` in evaluation as well:
      `eval_inner_learning_rate` does not apply.
    - `per_step_batch_norm_statistics`: separate BatchNorm moving statistics
      for every inner step. What is implemented: all floating-point
      non-trainable weights of the model (BatchNorm moving means and
      variances) get one copy per step, `max(1, inner_steps,
      eval_inner_steps)` copies in all; copy 0 is the model's own
      variables, the others belong to the learner. Inner step `k` runs on
      copy `k`, the query pass after the last step runs on the last step's
      copy, and each copy is updated by the passes that ran on it (averaged
      over the meta-batch, like the model's own state). Seed-generator state
      (Dropout) stays shared. BatchNorm's scale and offset are not copied
      per step (they adapt in the inner loop anyway). The copies are used
      where BatchNorm runs in inference mode, i.e. for the query with
      `query_statistics="moving"`; inner-loop passes normalise with batch
      statistics.

    Padded episodes (`tfmeta.data.variable_episodes`, varying ways and shots)
    need a classifier whose head has N outputs, N at least their largest way
    count; see `GradientLearner` for how they are handled. When ways vary,
    output slot `n` is only "the `n`-th class of this episode", so a
    meta-learned head binds nothing useful to it: `head_initialization=
    "zeros"` starts every task's head (the model's final `Dense`, kernel and
    bias) at zero, as Triantafillou et al. (2020) do for fo-MAML on
    Meta-Dataset. The first inner step then starts from uniform predictions
    over the episode's classes, and the outer loop meta-learns the body.

    Args:
        model: a built Keras model; its variables are the meta-learned
            initialization and are only changed by the outer optimizer.
        inner_learning_rate: SGD step size of the inner loop in meta-training
            (the initial value of learned rates).
        inner_steps: inner steps in meta-training.
        eval_inner_learning_rate: step size in evaluation and prediction
            (default: `inner_learning_rate`).
        eval_inner_steps: inner steps in evaluation and prediction (default:
            `inner_steps`).
        first_order: drop second-order terms (FOMAML).
        query_statistics: see `MetaLearner` (default `"support"`: each
            query is normalised with the support set's statistics).
        multi_step_loss: MAML++ multi-step loss (see above).
        multi_step_loss_iterations: optimizer iterations over which the
            multi-step loss anneals to the final-step loss.
        learned_inner_learning_rates: None, `"per_layer_per_step"` (LSLR) or
            `"per_parameter"` (Meta-SGD).
        per_step_batch_norm_statistics: MAML++ per-step BatchNorm statistics
            (see above).
        recompute_inner_steps: in meta-training, keep no activations of the
            inner steps for the meta-gradient; its backward pass runs each
            step again (gradient checkpointing, second order included).
            Trades compute for memory when many inner steps or large support
            sets exhaust it; results are unchanged. `benchmarks/throughput.py`
            measures its cost (learner `maml_recompute`).
        head_initialization: where each task's head starts: `"learned"` (the
            meta-learned weights, as in Finn et al.) or `"zeros"` (the final
            `Dense` layer's kernel and bias at zero; its meta-learned values
            are then unused and get zero meta-gradients).
        **kwargs: forwarded to `keras.Model`.

    Example:

    ```python
    import keras, tfmeta
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(40, activation="relu"),
                            keras.layers.Dense(40, activation="relu"), keras.layers.Dense(1)])
    maml = tfmeta.MAML(net, inner_learning_rate=0.01, inner_steps=1)
    maml.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    tasks = tfmeta.data.SinusoidTasks()
    maml.fit(tasks.episodes(support_shots=10, query_shots=10, meta_batch_size=25, seed=0),
             steps_per_epoch=100, epochs=1)

    # MAML++: multi-step loss, learned per-layer per-step learning rates.
    maml_pp = tfmeta.MAML(net, inner_steps=5, multi_step_loss=True,
                          learned_inner_learning_rates="per_layer_per_step")

    # Meta-Dataset episodes of 5-20 ways: a 20-way head that starts every task at zero.
    conv = tfmeta.models.conv4((28, 28, 1), num_classes=20)
    fo_maml = tfmeta.MAML(conv, inner_learning_rate=0.1, inner_steps=5, first_order=True,
                          head_initialization="zeros")
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        inner_learning_rate: float = 0.01,
        inner_steps: int = 1,
        eval_inner_learning_rate: float | None = None,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        query_statistics: str = query_statistics_lib.SUPPORT,
        multi_step_loss: bool = False,
        multi_step_loss_iterations: int = 5000,
        learned_inner_learning_rates: str | None = None,
        per_step_batch_norm_statistics: bool = False,
        recompute_inner_steps: bool = False,
        head_initialization: str = LEARNED_HEAD,
        **kwargs,
    ):
        super().__init__(
            model,
            inner_learning_rate=inner_learning_rate,
            inner_steps=inner_steps,
            eval_inner_learning_rate=eval_inner_learning_rate,
            eval_inner_steps=eval_inner_steps,
            query_statistics=query_statistics,
            **kwargs,
        )
        self.first_order = bool(first_order)
        self.multi_step_loss = bool(multi_step_loss)
        self.multi_step_loss_iterations = check_integer(
            "multi_step_loss_iterations", multi_step_loss_iterations, minimum=0
        )
        check_choice(
            "learned_inner_learning_rates", learned_inner_learning_rates, LEARNED_RATE_KINDS
        )
        if learned_inner_learning_rates == PER_LAYER_PER_STEP and self.inner_steps < 1:
            raise ValueError(
                "Expected inner_steps >= 1 with learned_inner_learning_rates="
                f"'{PER_LAYER_PER_STEP}'. Received: inner_steps={self.inner_steps}"
            )
        self.learned_inner_learning_rates = learned_inner_learning_rates
        self.per_step_batch_norm_statistics = bool(per_step_batch_norm_statistics)
        self.recompute_inner_steps = bool(recompute_inner_steps)
        self.head_initialization = _check_head_initialization(head_initialization)
        self._zeroed_head = (
            _final_dense_indices(model) if self.head_initialization == ZERO_HEAD else []
        )
        self.inner_learning_rate_variables = self._create_learning_rate_variables()
        self.step_statistics_variables = self._create_step_statistics()

    # ------------------------------------------------------------ variables
    def _create_learning_rate_variables(self) -> list:
        if self.learned_inner_learning_rates is None:
            return []
        weights = self.model.trainable_variables
        indices = self.adapted_indices
        rates = []
        for index in range(len(weights)) if indices is None else indices:
            weight = weights[index]
            shape = (
                (self.inner_steps,)
                if self.learned_inner_learning_rates == PER_LAYER_PER_STEP
                else tuple(weight.shape)
            )
            rates.append(learning_rate_variable(self, weight, shape, self.inner_learning_rate))
        return rates

    @property
    def _statistics_indices(self) -> list[int]:
        """Positions of the floating-point weights among `model.non_trainable_variables`."""
        state = self.model.non_trainable_variables
        return [i for i, v in enumerate(state) if keras.backend.is_float_dtype(v.dtype)]

    def _create_step_statistics(self) -> list:
        if not self.per_step_batch_norm_statistics:
            return []
        copies = max(1, self.inner_steps, self.eval_inner_steps)
        state = self.model.non_trainable_variables
        statistics = []
        for step in range(1, copies):
            for index in self._statistics_indices:
                variable = state[index]
                statistics.append(
                    self.add_weight(
                        shape=variable.shape,
                        dtype=variable.dtype,
                        initializer=lambda shape, dtype, value=variable.numpy(): value,
                        trainable=False,
                        name=f"step{step}_" + variable.path.replace("/", "_"),
                    )
                )
        return statistics

    @property
    def meta_variables(self) -> list:
        """The model's trainable weights, then the learned inner learning rates (if any)."""
        return list(self.model.trainable_variables) + list(self.inner_learning_rate_variables)

    @property
    def state_variables(self) -> list:
        """The model's non-trainable weights, then the per-step statistics copies (if any)."""
        return list(self.model.non_trainable_variables) + list(self.step_statistics_variables)

    # ----------------------------------------------------------- inner loop
    def task_initial_weights(self) -> adaptation.Weights:
        """The meta-learned weights, with the head at zero under `head_initialization="zeros"`.

        The head is multiplied by zero rather than replaced: its variables stay
        connected to the loss with a zero meta-gradient (a tape cannot build
        zero gradients for unconnected Keras variables).
        """
        params = super().task_initial_weights()
        for index in self._zeroed_head:
            params[index] = 0.0 * params[index]
        return params

    def inner_learning_rates(self, training: bool) -> list[list[tf.Tensor | float]]:
        """Per step, per adapted weight: the inner learning rates (see `adaptation.adapt`)."""
        if self.learned_inner_learning_rates is None:
            return super().inner_learning_rates(training)
        rates = [tf.convert_to_tensor(v.value) for v in self.inner_learning_rate_variables]
        steps = range(self.steps(training))
        if self.learned_inner_learning_rates == PER_PARAMETER:
            return [list(rates) for _ in steps]
        return [[r[min(step, self.inner_steps - 1)] for r in rates] for step in steps]

    def multi_step_loss_weights(self, dtype: tf.DType | str = tf.float32) -> tf.Tensor:
        """The weights of the query losses after each inner step, at the current iteration.

        Args:
            dtype: the floating-point dtype of the result.

        Returns:
            A tensor of shape `[max(1, inner_steps)]` summing to 1.
        """
        steps = max(1, self.inner_steps)
        final_only = tf.one_hot(steps - 1, steps, dtype=dtype)
        if steps == 1 or self.multi_step_loss_iterations == 0:
            return final_only
        iterations = tf.cast(self.optimizer.iterations, dtype)
        progress = iterations / tf.cast(self.multi_step_loss_iterations, dtype)
        floor = _MIN_INTERMEDIATE_WEIGHT / steps
        intermediate = tf.maximum(1.0 / steps - progress / steps, floor)
        final = tf.minimum(1.0 / steps + progress * (steps - 1) / steps, 1.0 - (steps - 1) * floor)
        weights = tf.concat([tf.fill([steps - 1], intermediate), [final]], axis=0)
        return tf.where(progress < 1.0, weights, final_only)

    def _split_state(self, state: adaptation.Weights):
        """`(model_state, statistics)`: `statistics[k]` is step copy `k` of the float state."""
        num_model = len(self.model.non_trainable_variables)
        model_state, extra = list(state[:num_model]), list(state[num_model:])
        indices = self._statistics_indices
        statistics = [[model_state[i] for i in indices]]
        for start in range(0, len(extra), max(1, len(indices))):
            statistics.append(extra[start : start + len(indices)])
        return model_state, statistics

    def _join_state(self, model_state: adaptation.Weights, statistics) -> adaptation.Weights:
        model_state = _with_statistics(model_state, self._statistics_indices, statistics[0])
        return model_state + [value for copy in statistics[1:] for value in copy]

    def _inner_loop(self, support_x, support_y, state, training, loss_fn):
        """Runs the inner loop on the support loss `loss_fn`.

        Returns `(params, model_state, statistics, trajectory)`:
        `trajectory[k]` holds `(params, model_state)` after step `k + 1`, the
        model state carrying the statistics copy that step ran on.
        """
        params = self.task_initial_weights()
        model_state, statistics = self._split_state(state)
        indices = self._statistics_indices
        trajectory = []
        for step, step_rates in enumerate(self.inner_learning_rates(training)):
            copy = min(step, len(statistics) - 1)
            model_state = _with_statistics(model_state, indices, statistics[copy])
            with query_statistics_lib.support_passes(self.model, training, self.query_statistics):
                params, model_state = adaptation.gradient_step(
                    self.model,
                    loss_fn,
                    params,
                    model_state,
                    support_x,
                    support_y,
                    learning_rates=step_rates,
                    first_order=self.first_order,
                    adapted=self.adapted_indices,
                    training=training,
                    recompute=self.recompute_inner_steps and training,
                )
            statistics[copy] = [model_state[i] for i in indices]
            trajectory.append((params, model_state))
        return params, model_state, statistics, trajectory

    def _adapt(self, support_x, support_y, state, training, loss_fn):
        """`GradientLearner._adapt` through MAML's inner loop (learned rates, per-step statistics).

        `state` may be the wrapped model's non-trainable weights alone; the
        per-step statistics copies are then read from the learner's variables.
        """
        if len(state) == len(self.model.non_trainable_variables):
            copies = [tf.convert_to_tensor(v.value) for v in self.step_statistics_variables]
            state = list(state) + copies
        params, model_state, _, _ = self._inner_loop(support_x, support_y, state, training, loss_fn)
        return params, model_state

    def _adapt_and_predict(self, task, state, training):
        """One task (padded or not): `(query_predictions, new_state, trajectory, episode)`,
        `episode` its real examples (`padded_episodes.real_examples`)."""
        episode = padded_episodes.real_examples(task)
        params, model_state, statistics, trajectory = self._on_support(
            self._inner_loop, episode, state, training
        )
        predictions, model_state = self._predict_queries(params, model_state, episode, training)
        last_copy = min(max(len(trajectory) - 1, 0), len(statistics) - 1)
        statistics[last_copy] = [model_state[i] for i in self._statistics_indices]
        return predictions, self._join_state(model_state, statistics), trajectory, episode

    def adapt_and_predict(self, task, state, training):
        predictions, state, _, _ = self._adapt_and_predict(task, state, training)
        return predictions, state

    def _fused_batch_norm_is_exact(self, training: bool) -> bool:
        # Meta-training passes all normalise with batch statistics; first order,
        # the meta-gradient differentiates BatchNorm once.
        return not training or self.first_order

    def task_meta_gradients(self, task, state):
        """The query loss (multi-step when enabled) and its gradients w.r.t. `meta_variables`."""
        if not self.multi_step_loss:
            return super().task_meta_gradients(task, state)
        with tf.GradientTape() as tape:
            predictions, state, trajectory, episode = self._adapt_and_predict(
                task, state, training=True
            )
            final_loss = self.query_loss(task, predictions)
            weights = self.multi_step_loss_weights(final_loss.dtype)
            loss = weights[-1] * final_loss
            for step, (params, step_state) in enumerate(trajectory[:-1]):
                outputs, _ = self._predict_queries(params, step_state, episode, training=True)
                loss += weights[step] * self.query_loss(task, outputs)
        grads = tape.gradient(
            loss, self.meta_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return loss, predictions, grads, state

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            first_order=self.first_order,
            multi_step_loss=self.multi_step_loss,
            multi_step_loss_iterations=self.multi_step_loss_iterations,
            learned_inner_learning_rates=self.learned_inner_learning_rates,
            per_step_batch_norm_statistics=self.per_step_batch_norm_statistics,
            recompute_inner_steps=self.recompute_inner_steps,
            head_initialization=self.head_initialization,
        )
        return config


def _with_statistics(
    model_state: adaptation.Weights, indices: list[int], values: adaptation.Weights
) -> adaptation.Weights:
    """`model_state` with the entries at `indices` replaced by `values`."""
    model_state = list(model_state)
    for index, value in zip(indices, values):
        model_state[index] = value
    return model_state


def _check_head_initialization(value) -> str:
    """Returns `value` unless it is not one of `HEAD_INITIALIZATIONS`."""
    return check_choice("head_initialization", value, HEAD_INITIALIZATIONS)


def _final_dense_indices(model: keras.Model) -> list[int]:
    """Indices into `model.trainable_variables` of the head: the last layer with weights, a Dense.

    Raises:
        ValueError: if that layer is not a `keras.layers.Dense`.
    """
    with_weights = [layer for layer in model.layers if layer.trainable_weights]
    head = with_weights[-1] if with_weights else None
    if not isinstance(head, keras.layers.Dense):
        ending = f"layer '{head.name}' ({type(head).__name__})" if head else "no layer with weights"
        raise ValueError(
            "Expected a model whose last layer with trainable weights is a `keras.layers.Dense` "
            "(the head that head_initialization='zeros' starts at zero). Received: model "
            f"'{model.name}' ending in {ending}"
        )
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    return sorted(position[id(v)] for v in head.trainable_weights)
