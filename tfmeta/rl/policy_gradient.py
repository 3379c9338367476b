"""Policy-gradient objectives on batches of tasks: the inner step's loss and the outer surrogates.

Every objective averages over the steps of a task that happened (`mask`),
then combines tasks: the inner loss *sums* them (each task's weights then get
their own gradient, see `TaskBatchedModel`), the outer objectives average them.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from tfmeta.adaptation import LossFn
from tfmeta.rl.distributions import ActionDistribution


class PolicyGradientBatch(NamedTuple):
    """What a policy-gradient step needs from rollouts of a batch of tasks.

    Attributes:
        observations: `[tasks, rollouts, T, observation_dim]`.
        actions: `[tasks, rollouts, T, action_dim]` or `[tasks, rollouts, T]`.
        advantages: `[tasks, rollouts, T]`, constants.
        mask: `[tasks, rollouts, T]`.
    """

    observations: tf.Tensor
    actions: tf.Tensor
    advantages: tf.Tensor
    mask: tf.Tensor

    @property
    def targets(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """`(actions, advantages, mask)`: the `targets` of `tfmeta.adaptation` steps."""
        return self.actions, self.advantages, self.mask


def task_means(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of `values` over each task's steps where `mask` is 1: `[tasks, rollouts, T] -> [tasks]`

    Tasks without a valid step get 0.
    """
    values = tf.cast(values, mask.dtype)
    return tf.reduce_sum(values * mask, axis=[1, 2]) / tf.maximum(
        tf.reduce_sum(mask, axis=[1, 2]), 1.0
    )


INNER_OBJECTIVES = ("log_likelihood", "likelihood_ratio")


def inner_loss(distribution: ActionDistribution, objective: str = "log_likelihood") -> LossFn:
    """The vanilla policy-gradient loss as a `tfmeta.adaptation` loss function.

    `loss(targets, outputs) = sum over tasks of mean over steps of
    -w(a|s) * A`, with `targets = PolicyGradientBatch.targets` and
    `outputs` the policy's distribution parameters. Both objectives have the
    REINFORCE gradient with advantages `A` (Williams 1992), so the inner
    step is the same; they differ in the curvature that a second-order
    meta-gradient differentiates through it:

    - `"log_likelihood"`: `w = log pi(a|s)`, Finn et al. 2017's. Its
      Hessian lacks the score-function term `E[grad log pi grad log pi^T A]`,
      so the second-order meta-gradient is biased (Rothfuss et al. 2019).
    - `"likelihood_ratio"`: `w = pi(a|s) / pi_sampling(a|s)`, ProMP's
      low-variance curvature objective (Rothfuss et al. 2019): its Hessian
      keeps that term. The sampling policy is taken to be the one evaluated
      (`stop_gradient` of its own log-probabilities), which holds for every
      inner step: each step's rollouts come from the weights it adapts.

    Args:
        distribution: a `tfmeta.rl.distributions` object.
        objective: one of `INNER_OBJECTIVES`.
    """
    if objective not in INNER_OBJECTIVES:
        raise ValueError(
            f"Expected an inner objective in {INNER_OBJECTIVES}. Received: objective={objective!r}"
        )

    def loss(targets, outputs):
        actions, advantages, mask = targets
        log_probs = distribution.log_prob(outputs, actions)
        if objective == "likelihood_ratio":
            weights = tf.exp(log_probs - tf.stop_gradient(log_probs))
        else:
            weights = log_probs
        return tf.reduce_sum(task_means(-weights * tf.cast(advantages, log_probs.dtype), mask))

    return loss


def likelihood_ratio_surrogate(
    distribution: ActionDistribution,
    old_outputs: tf.Tensor,
    outputs: tf.Tensor,
    batch: PolicyGradientBatch,
) -> tf.Tensor:
    """TRPO's surrogate to maximise: mean over tasks of `E[pi(a|s) / pi_old(a|s) * A]`."""
    ratio = tf.exp(
        distribution.log_prob(outputs, batch.actions)
        - distribution.log_prob(old_outputs, batch.actions)
    )
    return tf.reduce_mean(task_means(ratio * batch.advantages, batch.mask))


def clipped_surrogate(
    distribution: ActionDistribution,
    old_outputs: tf.Tensor,
    outputs: tf.Tensor,
    batch: PolicyGradientBatch,
    clip_ratio: float,
) -> tf.Tensor:
    """PPO's clipped surrogate to maximise (Schulman et al. 2017; ProMP's outer objective).

    Mean over tasks of `E[min(r A, clip(r, 1 - eps, 1 + eps) A)]`, where `r`
    is the likelihood ratio to the sampling policy.
    """
    ratio = tf.exp(
        distribution.log_prob(outputs, batch.actions)
        - distribution.log_prob(old_outputs, batch.actions)
    )
    clipped = tf.clip_by_value(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    advantages = batch.advantages
    return tf.reduce_mean(
        task_means(tf.minimum(ratio * advantages, clipped * advantages), batch.mask)
    )


def mean_kl(
    distribution: ActionDistribution, old_outputs: tf.Tensor, outputs: tf.Tensor, mask: tf.Tensor
) -> tf.Tensor:
    """Mean over tasks of the mean `KL(pi_old || pi)` over each task's steps."""
    return tf.reduce_mean(task_means(distribution.kl(old_outputs, outputs), mask))
