"""Helpers shared by the meta-RL tests: a tiny float64 policy, a fixed batch, a small learner."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta import rl
from tfmeta.rl.policy_gradient import PolicyGradientBatch


def tiny_policy(seed: int = 0, dtype: str = "float64") -> keras.Model:
    """A 2 -> 6 (tanh) -> Gaussian(2) policy, whose second derivatives are not zero."""
    keras.utils.set_random_seed(seed)
    return rl.gaussian_mlp_policy(2, 2, hidden_units=(6,), initial_log_std=-0.5, dtype=dtype)


def random_batch(
    tasks: int = 3, rollouts: int = 2, steps: int = 4, seed: int = 0
) -> PolicyGradientBatch:
    """A float64 policy-gradient batch with some padded steps."""
    generator = tf.random.Generator.from_seed(seed)
    mask = tf.cast(
        tf.range(steps)[None, None, :]
        < generator.uniform([tasks, rollouts, 1], 2, steps + 1, tf.int32),
        tf.float64,
    )
    return PolicyGradientBatch(
        observations=generator.normal([tasks, rollouts, steps, 2], dtype=tf.float64),
        actions=generator.normal([tasks, rollouts, steps, 2], dtype=tf.float64),
        advantages=generator.normal([tasks, rollouts, steps], dtype=tf.float64) * mask,
        mask=mask,
    )


def small_learner(policy: keras.Model | None = None, **kwargs) -> rl.PolicyMAML:
    """A PolicyMAML on short 2D navigation (horizon 8) with 3 rollouts per task."""
    family = rl.Navigation2D(horizon=8)
    if policy is None:
        policy = tiny_policy(dtype="float32")
    options = dict(inner_learning_rate=0.1, rollouts_per_task=3, eval_inner_steps=1)
    options.update(kwargs)
    return rl.PolicyMAML(policy, family, **options)


def restart(learner: rl.PolicyMAML, weights: list) -> None:
    """Puts a learner back to a fresh state: the given weights, step counter 0."""
    learner.policy.set_weights(weights)
    learner.optimizer.iterations.assign(0)


def uniform_actions(observations: tf.Tensor, seed: tf.Tensor, action_dim: int = 6) -> tf.Tensor:
    """A seeded random policy for rollouts (HalfCheetah's 6 actions): uniform in [-1, 1]."""
    return tf.random.stateless_uniform(
        tf.concat([tf.shape(observations)[:-1], [action_dim]], 0), seed, -1, 1
    )
