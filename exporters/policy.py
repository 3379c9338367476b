"""`export_policy`: a meta-learned policy for TF Serving that adapts from the rollouts it is sent.

The SavedModel (TF Serving's versioned layout, written atomically) has two
signatures:

- `serving_default`: `observations [N, observation_dim]` -> `actions` (the
  meta-learned policy's most likely actions) and `distribution` (its action
  distribution's parameters: mean and log-std, or logits), for clients that
  sample.
- `adapt`: one task's rollouts, `observations [R, T, observation_dim]`,
  `actions [R, T, action_dim]` (integers `[R, T]` for discrete actions),
  `rewards [R, T]`, `mask [R, T]` (1 for the steps that happened; 0 pads a
  trajectory that ended early), and `new_observations [N, observation_dim]`
  -> the `actions` and `distribution` of the policy adapted to those
  rollouts for the new observations. The adaptation is the learner's own:
  linear feature baseline, GAE, one vanilla policy-gradient step with the
  first evaluation learning rate. `T` is the family's horizon; `R` and `N`
  are free. Malformed requests (wrong shapes, NaN or Inf, a mask outside
  [0, 1]) fail with a message naming the field.

`assets.extra/tfmeta.json` describes the export (family, shapes, learning
rate, signatures). The LiteRT version, which adapts on the device, is
`tfmeta.exporters.policy_tflite.export_policy_tflite`.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from tfmeta import adaptation
from tfmeta.exporters import metadata, request_checks, serving_layout
from tfmeta.exporters.graph_function import graph_function
from tfmeta.exporters.saved_model import save
from tfmeta.rl.policy_maml import PolicyMAML
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_batched import TaskBatchedModel
from tfmeta.version import __version__


def _checked_mask(mask: tf.Tensor, horizon: int) -> tf.Tensor:
    mask = request_checks.checked_inputs(mask, "mask", None, (horizon,))
    in_range = tf.logical_and(tf.reduce_all(mask >= 0.0), tf.reduce_all(mask <= 1.0))
    check = tf.debugging.Assert(
        in_range, ["Expected `mask` values in [0, 1]. Received a value outside"]
    )
    with tf.control_dependencies([check]):
        return tf.identity(mask)


def adaptation_learning_rates(learner: PolicyMAML) -> list[float]:
    """The step sizes of the learner's evaluation steps, the first of them `adapt`'s (with
    learned step sizes, the scale of the learned ones)."""
    return list(learner.eval_learning_rates or [learner.inner_learning_rate])


def adaptation_step_sizes(learner: PolicyMAML) -> list:
    """What `PolicyMAML.inner_step` takes for each of those steps: a float, or one tensor
    per weight when the step sizes are learned."""
    return learner.step_sizes(adaptation_learning_rates(learner))


def adapted_parameters(
    learner: PolicyMAML, rollouts: Rollouts, new_observations: tf.Tensor
) -> tf.Tensor:
    """Action-distribution parameters `[N, params_dim]` for `new_observations` `[N, obs]` of
    the policy adapted to one task's `rollouts` (`[R, T, ...]`, no task axis) by the
    learner's first evaluation step: what the `adapt` signature serves."""
    batch = learner.policy_gradient_batch(tf.nest.map_structure(lambda x: x[None], rollouts))
    params = TaskBatchedModel.tile(adaptation.initial_weights(learner.policy)[0], 1)
    adapted = learner.inner_step(params, batch, adaptation_step_sizes(learner)[0])
    parameters, _ = learner.batched.stateless_call(adapted, [], new_observations[None])
    return parameters[0]


def _signatures(learner: PolicyMAML) -> dict[str, Any]:
    family, distribution = learner.family, learner.family.distribution
    horizon, features = family.horizon, family.observation_dim
    if distribution.discrete:
        action_spec = tf.TensorSpec([None, horizon], tf.int32, name="actions")
    else:
        action_spec = tf.TensorSpec(
            [None, horizon, distribution.action_dim], tf.float32, name="actions"
        )

    def outputs(parameters: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"actions": distribution.mode(parameters), "distribution": parameters}

    @graph_function(
        input_signature=[tf.TensorSpec([None, features], tf.float32, name="observations")]
    )
    def act(observations):
        observations = request_checks.checked_inputs(
            observations, "observations", None, (features,)
        )
        params, _ = adaptation.initial_weights(learner.policy)
        parameters, _ = adaptation.forward(learner.policy, params, [], observations, False)
        return outputs(parameters)

    @graph_function(
        input_signature=[
            tf.TensorSpec([None, horizon, features], tf.float32, name="observations"),
            action_spec,
            tf.TensorSpec([None, horizon], tf.float32, name="rewards"),
            tf.TensorSpec([None, horizon], tf.float32, name="mask"),
            tf.TensorSpec([None, features], tf.float32, name="new_observations"),
        ]
    )
    def adapt(observations, actions, rewards, mask, new_observations):
        rollouts = Rollouts(
            observations=request_checks.checked_inputs(
                observations, "observations", None, (horizon, features)
            ),
            actions=request_checks.checked_inputs(
                actions, "actions", None, tuple(action_spec.shape[1:])
            ),
            rewards=request_checks.checked_inputs(rewards, "rewards", None, (horizon,)),
            mask=_checked_mask(mask, horizon),
        )
        new_observations = request_checks.checked_inputs(
            new_observations, "new_observations", None, (features,)
        )
        return outputs(adapted_parameters(learner, rollouts, new_observations))

    return {"serving_default": act, "adapt": adapt}


def policy_metadata(learner: PolicyMAML, fmt: str) -> dict[str, Any]:
    """What every policy export's metadata says: format, family and the spaces of its policy."""
    distribution = learner.family.distribution
    return {
        "format_version": metadata.FORMAT_VERSION,
        "format": fmt,
        "tfmeta_version": __version__,
        "algorithm": "policy_maml",
        "family": learner.family.get_config(),
        "observation_dim": learner.family.observation_dim,
        "horizon": learner.family.horizon,
        "action_distribution": type(distribution).__name__,
        "action_shape": list(distribution.action_shape),
        "num_actions": distribution.num_actions if distribution.discrete else None,
        "scale_advantages": learner.scale_advantages,
    }


def _metadata(learner: PolicyMAML) -> dict[str, Any]:
    return {
        **policy_metadata(learner, "saved_model_policy"),
        "adapt_learning_rate": adaptation_learning_rates(learner)[0],
        "learned_inner_learning_rates": learner.learned_inner_learning_rates,
        "signatures": {
            "serving_default": ["observations"],
            "adapt": ["observations", "actions", "rewards", "mask", "new_observations"],
        },
    }


def export_policy(
    learner: PolicyMAML,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    overwrite: bool = False,
) -> str:
    """Exports a `PolicyMAML`'s policy for TF Serving as `<base_dir>/<version>/`.

    Args:
        learner: the learner whose meta-learned policy and adaptation are exported.
        base_dir: the model base directory TF Serving watches.
        version: the version number (>= 1); default: the next free one.
        overwrite: replace an existing version (otherwise FileExistsError).

    Returns:
        The version directory.

    Example:

    ```python
    from tfmeta.exporters.policy import export_policy

    path = export_policy(learner, "models/navigation")
    served = tf.saved_model.load(path)
    served.signatures["adapt"](observations=..., actions=..., rewards=..., mask=...,
                               new_observations=...)["actions"]
    ```
    """
    if not isinstance(learner, PolicyMAML):
        raise ValueError(f"Expected a tfmeta.rl.PolicyMAML. Received: {type(learner).__name__}")

    def write(directory: str) -> None:
        save(directory, _signatures(learner))
        metadata.write(directory, _metadata(learner))

    return serving_layout.write_version(base_dir, write, version=version, overwrite=overwrite)
