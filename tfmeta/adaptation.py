"""The functional core: adapt a Keras model's weights without touching its variables.

Every learner builds on these pure functions over weight lists. A Keras 3
model is run with substituted weights through `stateless_call`, so an inner
loop is a chain of tensors `params_0 -> params_1 -> ...` that an outer
`tf.GradientTape` can differentiate through (second-order MAML), while the
model's own variables stay untouched.

Non-trainable state (BatchNorm moving statistics, Dropout seed-generator
state) is threaded through every call: `forward` returns the updated state,
and the next call consumes it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import keras
import tensorflow as tf

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
Weights = list  # a list of tensors aligned with a model's variable list


def check_built(model: keras.Model) -> None:
    """Raises a ValueError unless `model` is a built Keras model with weights."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Expected a built `keras.Model`. Received: model of type {type(model).__name__}"
        )
    if not model.built or not model.trainable_variables:
        raise ValueError(
            "Expected a built model with trainable weights: build it first, e.g. "
            "with `keras.Input(shape)` in a functional/Sequential model or by calling "
            f"`model.build(input_shape)`. Received: model '{model.name}' "
            f"(built={model.built}, trainable weights={len(model.trainable_variables)})"
        )


def initial_weights(model: keras.Model) -> tuple[Weights, Weights]:
    """Reads the model's (trainable, non-trainable) variables as tensors.

    Reading inside a `tf.GradientTape` records the read, so gradients of
    anything computed from the returned tensors flow back to the variables.
    """
    trainable = [tf.convert_to_tensor(v.value) for v in model.trainable_variables]
    non_trainable = [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables]
    return trainable, non_trainable


def forward(
    model: keras.Model,
    params: Weights,
    state: Weights,
    inputs: tf.Tensor,
    training: bool,
) -> tuple[tf.Tensor, Weights]:
    """Runs `model` with substituted weights; returns `(outputs, new_state)`."""
    outputs, state = model.stateless_call(params, state, inputs, training=training)
    return outputs, list(state)


def loss_and_gradients(
    model: keras.Model,
    loss_fn: LossFn,
    params: Weights,
    state: Weights,
    inputs: tf.Tensor,
    targets: tf.Tensor,
    *,
    wrt: Sequence[int],
    training: bool = True,
) -> tuple[tf.Tensor, Weights, Weights]:
    """The loss of `model` on a batch and its gradients w.r.t. `params[i]` for `i in wrt`.

    Returns:
        `(loss, gradients, new_state)`; `gradients` is aligned with `wrt`.
        Parameters that do not affect the loss get zero gradients.
    """
    with tf.GradientTape() as tape:
        watched = [params[i] for i in wrt]
        tape.watch(watched)
        outputs, state = forward(model, params, state, inputs, training)
        loss = loss_fn(targets, outputs)
    grads = tape.gradient(loss, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return loss, grads, state


def adapt(
    model: keras.Model,
    loss_fn: LossFn,
    params: Weights,
    state: Weights,
    inputs: tf.Tensor,
    targets: tf.Tensor,
    *,
    learning_rates: Sequence[Sequence[tf.Tensor | float]],
    first_order: bool = False,
    adapted: Sequence[int] | None = None,
    training: bool = True,
    update_rule: SGD | Adam | None = None,
) -> tuple[Weights, Weights]:
    """Gradient-descent inner loop: `params <- params - lr * grad(loss)`.

    One step per entry of `learning_rates`; `learning_rates[step][i]` is the
    learning rate of `params[adapted[i]]` at that step: a scalar, or a tensor
    shaped like the parameter (Meta-SGD). The steps are unrolled, so an outer
    tape sees the whole chain (second order) unless `first_order=True`, which
    stops the gradient through each inner gradient (FOMAML).

    Args:
        model: a built Keras model; its variables are only read.
        loss_fn: `loss_fn(targets, outputs) -> scalar`.
        params: trainable weights to start from (aligned with
            `model.trainable_variables`).
        state: non-trainable weights (aligned with
            `model.non_trainable_variables`), threaded through every step.
        inputs, targets: the support set.
        learning_rates: per step, per adapted parameter.
        first_order: drop second-order terms.
        adapted: indices of the parameters that adapt (default: all). ANIL
            adapts only the head.
        training: the `training` flag of the forward passes.
        update_rule: how a step turns the gradients into an update: `SGD()`
            (the default, `lr * grad`) or `Adam(...)`, whose moments start
            at zero here, i.e. afresh for every call (every task).

    Returns:
        `(adapted_params, state)`.
    """
    params, state, _ = adapt_with_rule_state(
        model,
        loss_fn,
        params,
        state,
        inputs,
        targets,
        learning_rates=learning_rates,
        first_order=first_order,
        adapted=adapted,
        training=training,
        update_rule=update_rule,
    )
    return params, state


def adapt_with_rule_state(
    model: keras.Model,
    loss_fn: LossFn,
    params: Weights,
    state: Weights,
    inputs: tf.Tensor,
    targets: tf.Tensor,
    *,
    learning_rates: Sequence[Sequence[tf.Tensor | float]],
    first_order: bool = False,
    adapted: Sequence[int] | None = None,
    training: bool = True,
    update_rule: SGD | Adam | None = None,
    rule_state: Weights | None = None,
    minibatches: tf.Tensor | None = None,
) -> tuple[Weights, Weights, Weights]:
    """`adapt` from the update rule's state `rule_state` (default: `update_rule.init`,
    Adam's zero moments), also returning the rule's state after the last step, for a
    learner that carries it from task to task (Reptile's `carry_inner_moments`).

    `minibatches` (`[steps, batch_size]` indices into `inputs`, e.g. from
    `minibatch_indices`) gives every step its own minibatch of the examples;
    by default every step takes all of them.

    Returns:
        `(adapted_params, state, rule_state)`.
    """
    rule = SGD() if update_rule is None else update_rule
    if rule_state is None:
        indices = list(range(len(params))) if adapted is None else list(adapted)
        rule_state = rule.init([params[i] for i in indices])
    if minibatches is not None and minibatches.shape[0] != len(learning_rates):
        raise ValueError(
            f"Expected one minibatch per inner step ({len(learning_rates)}). "
            f"Received: minibatches of shape {minibatches.shape}"
        )
    for step, step_rates in enumerate(learning_rates):
        step_inputs, step_targets = inputs, targets
        if minibatches is not None:
            step_inputs = tf.gather(inputs, minibatches[step])
            step_targets = tf.gather(targets, minibatches[step])
        params, state, rule_state = rule_step(
            model,
            loss_fn,
            params,
            state,
            rule_state,
            step_inputs,
            step_targets,
            learning_rates=step_rates,
            first_order=first_order,
            adapted=adapted,
            training=training,
            update_rule=rule,
        )
    return list(params), state, rule_state


def minibatch_indices(
    num_examples: tf.Tensor | int, batch_size: int, steps: int, seed: tf.Tensor
) -> tf.Tensor:
    """`[steps, batch_size]` indices of `num_examples` examples: consecutive minibatches of
    passes over them, each pass in its own random order (sampling without replacement,
    as the Reptile paper's code draws its inner-loop minibatches).

    A minibatch may span two passes; with `batch_size` above `num_examples` an
    example repeats within one. `num_examples` may be a tensor (a padded
    task's real support size). The draw is a function of the stateless
    `seed` (`[2]` integers) alone.
    """
    num_examples = tf.cast(num_examples, tf.int32)
    total = steps * batch_size
    passes = (total + num_examples - 1) // num_examples
    keys = tf.random.stateless_uniform(tf.stack([passes, num_examples]), seed=seed)
    order = tf.reshape(tf.argsort(keys, axis=1), [-1])[:total]
    return tf.reshape(order, [steps, batch_size])


@dataclasses.dataclass(frozen=True)
class SGD:
    """The plain inner-loop update `lr * grad`; it keeps no state."""

    def init(self, params: Weights) -> Weights:
        return []

    def updates(
        self, grads: Weights, rates: list, rule_state: Weights
    ) -> tuple[Weights, Weights]:
        """`(updates, new_rule_state)`: a step is `params[i] - updates[i]`."""
        return [rate * grad for grad, rate in zip(grads, rates)], rule_state


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam as an inner-loop update rule, in TensorFlow 1's `AdamOptimizer` form.

    Per adapted weight, at step `t` (from 1) with gradient `g` and rate `lr`:
    `m = beta1 * m + (1 - beta1) * g`, `v = beta2 * v + (1 - beta2) * g**2`,
    update `lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + epsilon)`.
    The state `[t, *m, *v]` is a weight list like any other, threaded
    through the steps (`rule_step`); `init` gives the zero state. The
    defaults are those of Nichol et al.'s Reptile code (`beta1=0`, TF1's
    `beta2=0.999`, `epsilon=1e-8`). The update of a weight whose gradient is
    0 at every step stays 0 (padded classes do not move). Differentiating
    through it is possible but meets `sqrt(v)` at 0 for such weights.
    """

    beta1: float = 0.0
    beta2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self):
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Expected Adam's `{name}` in [0, 1). Received: {name}={value!r}")
        if not self.epsilon > 0.0:
            raise ValueError(f"Expected Adam's `epsilon` > 0. Received: epsilon={self.epsilon!r}")

    def init(self, params: Weights) -> Weights:
        dtype = params[0].dtype if params else tf.float32
        zeros = [tf.zeros_like(p) for p in params]
        return [tf.zeros((), dtype)] + zeros + list(zeros)

    def updates(
        self, grads: Weights, rates: list, rule_state: Weights
    ) -> tuple[Weights, Weights]:
        """`(updates, new_rule_state)`: a step is `params[i] - updates[i]`."""
        n = len(grads)
        t = rule_state[0] + 1
        firsts, seconds = rule_state[1 : 1 + n], rule_state[1 + n :]
        new_firsts, new_seconds, updates = [], [], []
        for grad, rate, m, v in zip(grads, rates, firsts, seconds):
            dtype = grad.dtype
            beta1, beta2 = tf.constant(self.beta1, dtype), tf.constant(self.beta2, dtype)
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * tf.square(grad)
            step_size = rate * tf.sqrt(1 - beta2 ** tf.cast(t, dtype))
            if self.beta1:
                step_size = step_size / (1 - beta1 ** tf.cast(t, dtype))
            updates.append(step_size * m / (tf.sqrt(v) + tf.constant(self.epsilon, dtype)))
            new_firsts.append(m)
            new_seconds.append(v)
        return updates, [t] + new_firsts + new_seconds


def gradient_step(
    model: keras.Model,
    loss_fn: LossFn,
    params: Weights,
    state: Weights,
    inputs: tf.Tensor,
    targets: tf.Tensor,
    *,
    learning_rates: Sequence[tf.Tensor | float],
    first_order: bool = False,
    adapted: Sequence[int] | None = None,
    training: bool = True,
    recompute: bool = False,
) -> tuple[Weights, Weights]:
    """One step of the inner loop: `params[i] <- params[i] - lr_i * grad_i(loss)`.

    `adapt` is a chain of these steps. Learners that need something between
    the steps (MAML++'s query loss after every step, its per-step BatchNorm
    statistics) chain them themselves.

    Args:
        learning_rates: one per adapted parameter (scalar or shaped like it).
        recompute: keep none of the step's activations for an outer tape's
            backward pass, which runs the step again instead (see
            `_recomputed_step`): memory for compute, second order included.
        See `adapt` for the other arguments.

    Returns:
        `(new_params, new_state)`.
    """
    params, state, _ = rule_step(
        model,
        loss_fn,
        params,
        state,
        [],
        inputs,
        targets,
        learning_rates=learning_rates,
        first_order=first_order,
        adapted=adapted,
        training=training,
        recompute=recompute,
    )
    return params, state


def rule_step(
    model: keras.Model,
    loss_fn: LossFn,
    params: Weights,
    state: Weights,
    rule_state: Weights,
    inputs: tf.Tensor,
    targets: tf.Tensor,
    *,
    learning_rates: Sequence[tf.Tensor | float],
    first_order: bool = False,
    adapted: Sequence[int] | None = None,
    training: bool = True,
    update_rule: SGD | Adam | None = None,
    recompute: bool = False,
) -> tuple[Weights, Weights, Weights]:
    """`gradient_step` with an update rule (`SGD`, `Adam`) and its state threaded through.

    Returns:
        `(new_params, new_state, new_rule_state)`; `params[i] <- params[i] -
        update_i` with `update_rule.updates(grads, rates, rule_state)`.
    """
    rule = SGD() if update_rule is None else update_rule
    indices = list(range(len(params))) if adapted is None else list(adapted)
    if len(learning_rates) != len(indices):
        raise ValueError(
            f"Expected one learning rate per adapted parameter ({len(indices)}). "
            f"Received: {len(learning_rates)}"
        )
    if recompute and rule_state:
        raise ValueError(
            "Expected a stateless update rule (SGD) with `recompute=True`. "
            f"Received: update_rule={rule!r}"
        )
    rates = [_as_dtype(rate, params[i].dtype) for i, rate in zip(indices, learning_rates)]

    def step(params, rates):
        _, grads, new_state = loss_and_gradients(
            model, loss_fn, params, state, inputs, targets, wrt=indices, training=training
        )
        if first_order:
            grads = [tf.stop_gradient(grad) for grad in grads]
        updates, new_rule_state = rule.updates(grads, rates, rule_state)
        params = list(params)
        for i, update in zip(indices, updates):
            params[i] = params[i] - update
        return params, new_state, new_rule_state

    if recompute:
        new_params, new_state = _recomputed_step(
            lambda params, rates: step(params, rates)[:2], list(params), rates
        )
        return new_params, new_state, rule_state
    return step(list(params), rates)


def _recomputed_step(step, params: Weights, rates: list) -> tuple[Weights, Weights]:
    """`step(params, rates)` whose backward pass recomputes it (gradient checkpointing).

    `tf.recompute_grad` gives wrong second-order meta-gradients here (it was
    measured against the stored path), so the checkpoint is written with
    `tf.custom_gradient`: the backward pass runs the step again under a tape
    and returns its vector-Jacobian product, second-order terms included.
    Only `params` and `rates` (and the step's captured inputs) are kept for
    it. The new state (BatchNorm moving statistics) carries no gradient,
    which is exact wherever no loss reads it (batch statistics in training).
    """
    num_params = len(params)

    @tf.custom_gradient
    def checkpointed(*flat):
        new_params, new_state = step(list(flat[:num_params]), list(flat[num_params:]))

        def backward(*upstream):
            upstream = [
                tf.zeros_like(p) if u is None else u
                for p, u in zip(new_params, upstream[:num_params])
            ]
            # Inputs that exist only once the backward pass has reached this
            # step: otherwise grappler merges the replay with the forward ops
            # (common subexpressions) and keeps their activations after all.
            with tf.control_dependencies(upstream):
                replay = [tf.identity(x) for x in flat]
            with tf.GradientTape() as tape:
                tape.watch(replay)
                again, _ = step(replay[:num_params], replay[num_params:])
            return tape.gradient(
                again, replay, output_gradients=upstream,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )

        outputs = list(new_params) + [tf.stop_gradient(s) for s in new_state]
        return outputs, backward

    outputs = checkpointed(*params, *rates)
    return list(outputs[:num_params]), list(outputs[num_params:])


def _as_dtype(value: tf.Tensor | float, dtype: tf.DType) -> tf.Tensor:
    """`value` as a tensor of `dtype`; Python floats convert exactly (no float32 detour)."""
    if isinstance(value, (tf.Tensor, tf.Variable)) or hasattr(value, "value"):
        return tf.cast(value, dtype)
    return tf.constant(value, dtype)


def constant_learning_rates(
    learning_rate: tf.Tensor | float, steps: int, num_params: int
) -> list[list[tf.Tensor | float]]:
    """The `learning_rates` argument of `adapt` for one rate everywhere."""
    return [[learning_rate] * num_params for _ in range(steps)]
