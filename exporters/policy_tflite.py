"""`export_policy_tflite`: a meta-learned policy that adapts on the device with stock LiteRT.

A controller adapts from its own rollouts, as `export_policy`'s `adapt`
signature does on a server: linear feature baseline, GAE, advantages
normalised, one vanilla policy-gradient step. Everything converts to builtin
ops (no Flex delegate): the policy runs through `LayerProgram` with the
backward passes of `builtin_grads`, the baseline's ridge fit is an unrolled
QR least-squares solve in float32 on centred features (`baseline_values`;
the learner fits in float64).

Signatures (static shapes: `R` rollouts of the family's horizon `T`, `N`
observations per call, both fixed at export; `P` floats of device state):

- `act(observations[N, obs]) -> actions, distribution`: the device policy's
  most likely actions and its action distribution's parameters (mean and
  log-std, or logits), for apps that sample.
- `train_step(observations[R, T, obs], actions[R, T, ...], rewards[R, T],
  mask[R, T]) -> loss`: one policy-gradient step on the device weights, at
  the learner's evaluation step size for the steps taken since `reset`
  (0.1, then 0.05, ... for the paper's MuJoCo recipes; each weight's own,
  scaled alike, when the step sizes are learned). The loss is the surrogate
  before the step.
- `adapt(observations, actions, rewards, mask, new_observations[N, obs]) ->
  actions, distribution`: one step from the meta-learned weights, then the
  adapted policy on `new_observations`, as the SavedModel's `adapt`; the
  device state is untouched.
- `get_weights`, `set_weights`, `reset`, `metadata`: as for every on-device
  model (`tfmeta.exporters.device_state`).

`mask` is 1 for the steps that happened, 0 for the padding of a trajectory
that ended early. TFLite has no assert ops: a call with a non-finite input,
a mask outside [0, 1] or a discrete action out of range returns NaN and
leaves the device state unchanged; an input of the wrong size fails in the
interpreter.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta import adaptation
from tfmeta.exporters import builtin_grads, builtin_linalg, layer_program
from tfmeta.exporters.device_state import (
    COMMON_SIGNATURES,
    DeviceModule,
    exact_size,
    nan_unless,
    weights_layout,
)
from tfmeta.exporters.graph_function import graph_function
from tfmeta.exporters.policy import (
    adaptation_learning_rates,
    adaptation_step_sizes,
    adapted_parameters,
    policy_metadata,
)
from tfmeta.exporters.tflite import convert, interpreter, relative_difference, write_model
from tfmeta.rl import advantages as advantages_lib
from tfmeta.rl.linear_baseline import LinearFeatureBaseline
from tfmeta.rl.policy_maml import PolicyMAML, per_weight
from tfmeta.rl.rollouts import Rollouts


def _all_finite(tensors: list[tf.Tensor]) -> tf.Tensor:
    """True when no value is NaN or infinite (`|x| < inf` is False for NaN)."""
    return tf.reduce_all([tf.reduce_all(tf.abs(t) < np.inf) for t in tensors])


def baseline_values(baseline: LinearFeatureBaseline, observations: tf.Tensor,
                    returns: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The linear baseline's values `[R, T]` for one task's rollouts, in float32 and builtin ops.

    The same ridge fit as `LinearFeatureBaseline` (which solves it in float64),
    rewritten for float32: each feature but the constant is centred on its
    mean over the valid steps, `X' = X M` with `M` the matrix that subtracts
    the means, and the fit, `min ||X' c' - y||^2 + ridge ||M c'||^2` (the same
    solution, `c = M c'`), is solved as the least-squares problem of `X'`
    stacked on `sqrt(ridge) M` by QR (`builtin_linalg.least_squares`), never
    squaring the condition number as the normal equations do. On rollouts
    of HalfCheetah (20 observation features) the normal equations in float32
    were off by up to 0.23% of the values' scale, and on Ant's (125, some
    constant over the rollouts) they were singular; `benchmarks/policy_export.py`
    measures this solver's agreement with the learner.
    """
    features = baseline.features(observations, tf.float32)
    features = tf.reshape(features, [-1, features.shape[-1]])
    size = features.shape[-1]
    weights = tf.reshape(mask, [-1, 1])
    constant = tf.one_hot(size - 1, size)  # `features` ends with the constant 1
    means = tf.reduce_sum(features * weights, axis=0) / tf.maximum(tf.reduce_sum(weights), 1.0)
    means = means * (1.0 - constant)
    centred = features - means
    shift = tf.eye(size) - constant[:, None] * means[None, :]  # M: centred = features @ M
    rows = tf.concat([centred * weights, math.sqrt(baseline.regularization) * shift], axis=0)
    targets = tf.concat([tf.reshape(returns, [-1, 1]) * weights, tf.zeros([size, 1])], axis=0)
    coefficients = builtin_linalg.least_squares(rows, targets)
    return tf.reshape(tf.matmul(centred, coefficients), returns.shape)


class PolicyDeviceModule(DeviceModule):
    """The device state and signatures of an exported `PolicyMAML` policy.

    Args:
        learner: the learner; its policy must be a chain of
            `layer_program.SUPPORTED_LAYERS` in float32.
        rollouts: `R`, the rollouts per `train_step` / `adapt` call.
        observations_per_call: `N`, the observations per `act` / `adapt` call.
    """

    SIGNATURES = COMMON_SIGNATURES + ("act", "adapt", "train_step")

    def __init__(self, learner: PolicyMAML, rollouts: int, observations_per_call: int):
        policy = learner.policy
        if policy.non_trainable_variables:
            raise layer_program.UnsupportedModelError(
                "Expected a policy without non-trainable weights for on-device adaptation. "
                f"Received: {[v.path for v in policy.non_trainable_variables]}"
            )
        self._program = layer_program.LayerProgram(policy)
        self._program.check_matches_model(max(observations_per_call, 2))
        self._learner = learner
        self._distribution = learner.family.distribution
        weights = len(policy.trainable_variables)
        steps = [per_weight(size, weights) for size in adaptation_step_sizes(learner)]
        # Per weight, its step size at each evaluation step (`[steps]`, or `[steps, *shape]`
        # when learned): a train_step takes the row of the steps it has taken.
        self._step_size_tables = [
            np.stack([np.asarray(step[i], np.float32) for step in steps]) for i in range(weights)
        ]
        self._rollouts = rollouts
        self._layout_json = json.dumps(  # a string: tf.Module would wrap a list
            weights_layout([(v.path, list(v.shape), True) for v in policy.trainable_variables])
        )
        super().__init__([v.numpy() for v in policy.trainable_variables], None,
                         observations_per_call)

    def layout(self) -> list[dict[str, Any]]:
        return json.loads(self._layout_json)

    # ------------------------------------------------------------ specs
    def _rollout_specs(self) -> list[tf.TensorSpec]:
        family, r = self._learner.family, self._rollouts
        t, features = family.horizon, family.observation_dim
        if self._distribution.discrete:
            actions = tf.TensorSpec([r, t], tf.int32, name="actions")
        else:
            actions = tf.TensorSpec([r, t, self._distribution.action_dim], tf.float32,
                                    name="actions")
        return [
            tf.TensorSpec([r, t, features], tf.float32, name="observations"),
            actions,
            tf.TensorSpec([r, t], tf.float32, name="rewards"),
            tf.TensorSpec([r, t], tf.float32, name="mask"),
        ]

    def _observations_spec(self, name: str) -> tf.TensorSpec:
        features = self._learner.family.observation_dim
        return tf.TensorSpec([self._query_size, features], tf.float32, name=name)

    # ------------------------------------------------------- adaptation
    def _valid(self, rollouts: Rollouts, *more: tf.Tensor) -> tf.Tensor:
        """Whether a call's inputs are usable (finite, mask in [0, 1], actions in range)."""
        floats = [rollouts.observations, rollouts.rewards, rollouts.mask, *more]
        valid = _all_finite(floats) & tf.reduce_all(
            (rollouts.mask >= 0.0) & (rollouts.mask <= 1.0)
        )
        if self._distribution.discrete:
            actions = rollouts.actions
            in_range = (actions >= 0) & (actions < self._distribution.num_actions)
            return valid & tf.reduce_all(in_range)
        return valid & _all_finite([rollouts.actions])

    def _advantages(self, rollouts: Rollouts) -> tf.Tensor:
        """GAE advantages `[R, T]` centred (and scaled) as `PolicyMAML.policy_gradient_batch`
        makes them for one task."""
        learner = self._learner
        rewards, mask = rollouts.rewards, rollouts.mask
        returns = advantages_lib.discounted_returns(rewards, mask, learner.discount)
        values = baseline_values(learner.baseline, rollouts.observations, returns, mask)
        advantages = advantages_lib.generalized_advantages(
            rewards, values, mask, learner.discount, learner.gae_lambda
        )
        return advantages_lib.normalize_per_task(advantages, mask, scale=learner.scale_advantages)

    def _surrogate(self, targets, outputs):
        """The inner loss of `policy_gradient.inner_loss` for one task, with builtin
        backward passes: minus the mean over valid steps of `log pi(a|s) * A`."""
        actions, advantages, mask = targets
        if self._distribution.discrete:
            log_probs = builtin_grads.categorical_log_prob(outputs, actions)
        else:
            log_probs = builtin_grads.gaussian_log_prob(outputs, actions)
        return -tf.reduce_sum(log_probs * advantages * mask) / tf.maximum(
            tf.reduce_sum(mask), 1.0
        )

    def _step(self, params: list, rollouts: Rollouts, step_sizes: list):
        """One policy-gradient step of `params`, each by its step size: `(surrogate before
        it, new params)`."""
        r, t = rollouts.rewards.shape
        flat = [r * t]
        targets = (
            tf.reshape(rollouts.actions, flat + list(self._distribution.action_shape)),
            tf.reshape(self._advantages(rollouts), flat),
            tf.reshape(rollouts.mask, flat),
        )
        observations = tf.reshape(rollouts.observations, [r * t, -1])
        loss, grads, _ = adaptation.loss_and_gradients(
            self._program, self._surrogate, params, [], observations, targets,
            wrt=range(len(params)), training=False,
        )
        return loss, [p - size * g for p, size, g in zip(params, step_sizes, grads)]

    def _outputs(self, params: list, observations: tf.Tensor) -> dict[str, tf.Tensor]:
        parameters, _ = self._program.stateless_call(params, [], observations)
        return {"actions": self._distribution.mode(parameters), "distribution": parameters}

    def _step_sizes(self, steps_taken: tf.Tensor) -> list[tf.Tensor]:
        """Each weight's step size for the step after `steps_taken` (the last one's after)."""
        index = tf.minimum(steps_taken, len(self._step_size_tables[0]) - 1)
        return [tf.gather(tf.constant(table), index) for table in self._step_size_tables]

    def signatures(self) -> dict[str, Any]:
        @graph_function(input_signature=[self._observations_spec("observations")])
        def act(observations):
            return self._outputs(self._read(), exact_size(observations))

        @graph_function(input_signature=self._rollout_specs())
        def train_step(observations, actions, rewards, mask):
            rollouts = Rollouts(*[exact_size(x) for x in (observations, actions, rewards, mask)])
            valid = self._valid(rollouts)
            values = self._read()
            loss, new_values = self._step(values, rollouts, self._step_sizes(self.steps_taken))
            self._assign([tf.where(valid, new, old) for new, old in zip(new_values, values)])
            self.steps_taken.assign_add(tf.cast(valid, tf.int32))
            return {"loss": nan_unless(valid, loss)}

        @graph_function(
            input_signature=self._rollout_specs() + [self._observations_spec("new_observations")]
        )
        def adapt(observations, actions, rewards, mask, new_observations):
            rollouts = Rollouts(*[exact_size(x) for x in (observations, actions, rewards, mask)])
            new_observations = exact_size(new_observations)
            valid = self._valid(rollouts, new_observations)
            initial = [tf.constant(v) for v in self._initial]
            first = [tf.constant(table[0]) for table in self._step_size_tables]
            _, adapted = self._step(initial, rollouts, first)
            outputs = self._outputs(adapted, new_observations)
            return {name: value if value.dtype.is_integer else nan_unless(valid, value)
                    for name, value in outputs.items()}

        return {"act": act, "train_step": train_step, "adapt": adapt,
                **self._common_signatures()}


def example_rollouts(learner: PolicyMAML, rollouts: int, seed: int = 0) -> Rollouts:
    """Synthetic rollouts of the exported shapes for checking an export: standard normal
    observations, actions and rewards, and the last trajectory ending half-way."""
    family, distribution = learner.family, learner.family.distribution
    rng = np.random.default_rng(seed)
    shape = (rollouts, family.horizon)
    if distribution.discrete:
        actions = rng.integers(0, distribution.num_actions, shape).astype(np.int32)
    else:
        actions = rng.standard_normal(shape + (distribution.action_dim,)).astype(np.float32)
    mask = np.ones(shape, np.float32)
    mask[-1, family.horizon // 2:] = 0.0
    return Rollouts(
        observations=rng.standard_normal(shape + (family.observation_dim,)).astype(np.float32),
        actions=actions,
        rewards=rng.standard_normal(shape).astype(np.float32),
        mask=mask,
    )


def verify(model_content: bytes, learner: PolicyMAML, rollouts: Rollouts,
           new_observations: np.ndarray, atol: float = 1e-4) -> float:
    """Runs `adapt` in LiteRT and compares its distribution parameters with the learner's.

    Returns:
        The max abs difference, relative to `1 + max|expected|`.

    Raises:
        ValueError: if it exceeds `atol`.
    """
    runner = interpreter(model_content).get_signature_runner("adapt")
    received = runner(**rollouts._asdict(), new_observations=new_observations)["distribution"]
    expected = adapted_parameters(
        learner, Rollouts(*[tf.constant(x) for x in rollouts]), tf.constant(new_observations)
    ).numpy()
    error = relative_difference(received, expected)
    if not error <= atol:
        raise ValueError(
            "Expected the converted TFLite policy to adapt like the learner. Received: relative "
            f"max abs difference {error:.3g} > {atol} on the verification rollouts; pass "
            "`verification_rollouts` from the environment if the synthetic ones are far from it."
        )
    return error


def _metadata(learner: PolicyMAML, module: PolicyDeviceModule, rollouts: int,
              observations_per_call: int) -> dict[str, Any]:
    return {
        **policy_metadata(learner, "tflite_policy"),
        "rollouts": rollouts,
        "observations_per_call": observations_per_call,
        "learning_rates": adaptation_learning_rates(learner),
        "learned_inner_learning_rates": learner.learned_inner_learning_rates,
        "signatures": list(module.SIGNATURES),
        "weights_layout": module.layout(),
    }


def export_policy_tflite(
    learner: PolicyMAML,
    path: str | os.PathLike,
    *,
    rollouts: int | None = None,
    observations_per_call: int = 1,
    verify_with_litert: bool = True,
    verification_rollouts: Rollouts | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Writes a `.tflite` policy that adapts to a task from its own rollouts on the device.

    Args:
        learner: a `tfmeta.rl.PolicyMAML` whose policy is a float32 chain of
            `tfmeta.exporters.SUPPORTED_LAYERS` (the default Gaussian and
            categorical MLP policies are).
        path: the `.tflite` file to write (atomically).
        rollouts: trajectories per `train_step` / `adapt` call (static);
            default: the learner's evaluation rollouts per task.
        observations_per_call: observations per `act` / `adapt` call (static);
            1 for a controller acting step by step.
        verify_with_litert: run `adapt` in LiteRT on `verification_rollouts`
            and raise unless it matches the learner's own adaptation.
        verification_rollouts: `Rollouts` of numpy arrays of the exported
            shapes; default: `example_rollouts` (synthetic).
        overwrite: replace an existing file at `path`.

    Returns:
        The export metadata (also returned by the model's `metadata` signature).

    Example:

    ```python
    from tfmeta.exporters.policy_tflite import export_policy_tflite
    export_policy_tflite(learner, "navigation.tflite")
    ```
    """
    if not isinstance(learner, PolicyMAML):
        raise ValueError(f"Expected a tfmeta.rl.PolicyMAML. Received: {type(learner).__name__}")
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"Expected a new file for the TFLite policy. Received: path '{path}', which exists; "
            "pass overwrite=True to replace it."
        )
    rollouts = learner.eval_rollouts_per_task if rollouts is None else rollouts
    for name, value in (("rollouts", rollouts), ("observations_per_call", observations_per_call)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected `{name}` >= 1. Received: {name}={value!r}")
    module = PolicyDeviceModule(learner, rollouts, observations_per_call)
    info = _metadata(learner, module, rollouts, observations_per_call)
    module.metadata_json = json.dumps(info)
    content = convert(module)
    if verify_with_litert:
        sample = verification_rollouts or example_rollouts(learner, rollouts)
        new_observations = np.random.default_rng(1).standard_normal(
            (observations_per_call, learner.family.observation_dim)
        ).astype(np.float32)
        verify(content, learner, sample, new_observations)
    write_model(path, content)
    return info
