"""Discounted returns and generalized advantage estimation (GAE) on padded trajectories.

Both are sums over future steps weighted by powers of a factor; on the short
horizons of meta-RL (100-200 steps) they are written as one product with a
`[T, T]` upper-triangular matrix of those powers instead of a sequential scan,
so they vectorise over tasks and rollouts inside one graph.
"""

from __future__ import annotations

import tensorflow as tf


def _future_weights(factor: float | tf.Tensor, length: int, dtype: tf.DType) -> tf.Tensor:
    """`W[t, k] = factor ** (k - t)` for `k >= t`, else 0: `x @ W^T` sums the weighted future."""
    steps = tf.range(length, dtype=dtype)
    gaps = steps[None, :] - steps[:, None]
    factor = tf.cast(tf.convert_to_tensor(factor, dtype_hint=dtype), dtype)  # floats exactly
    return tf.where(gaps >= 0, tf.pow(factor, tf.maximum(gaps, 0.0)), tf.zeros([], dtype))


def discounted_returns(rewards: tf.Tensor, mask: tf.Tensor, discount: float) -> tf.Tensor:
    """`G_t = sum_k discount**(k-t) * r_k` over the steps that happened.

    Args:
        rewards, mask: `[..., T]`; steps with mask 0 contribute nothing.
        discount: the discount factor gamma.

    Returns:
        `[..., T]`, zero where `mask` is 0.
    """
    weights = _future_weights(discount, rewards.shape[-1], rewards.dtype)
    return tf.einsum("...k,tk->...t", rewards * mask, weights) * mask


def generalized_advantages(
    rewards: tf.Tensor, values: tf.Tensor, mask: tf.Tensor, discount: float, gae_lambda: float
) -> tf.Tensor:
    """GAE(gamma, lambda) of Schulman et al. 2016 on padded trajectories.

    `delta_t = r_t + gamma * V_{t+1} - V_t` (with `V` zero after the last
    step, also at the horizon) and `A_t = sum_k (gamma * lambda)**(k-t) *
    delta_k`. With `gae_lambda=1` this is the discounted return minus the
    baseline, as in Finn et al. 2017.

    Args:
        rewards, values, mask: `[..., T]`.
        discount: gamma. gae_lambda: lambda.

    Returns:
        `[..., T]`, zero where `mask` is 0.
    """
    values = values * mask
    next_values = tf.concat([values[..., 1:], tf.zeros_like(values[..., :1])], axis=-1)
    deltas = (rewards + discount * next_values - values) * mask
    weights = _future_weights(discount * gae_lambda, rewards.shape[-1], rewards.dtype)
    return tf.einsum("...k,tk->...t", deltas, weights) * mask


def normalize_per_task(
    advantages: tf.Tensor, mask: tf.Tensor, scale: bool = True, epsilon: float = 1e-8
) -> tf.Tensor:
    """Advantages centred over each task's steps and, with `scale`, scaled to unit standard
    deviation (rllab's `center_adv`, which the paper's code uses).

    Scaled, every task's inner step has the same size whatever its rewards;
    centred only, a task whose returns vary little (one the policy nearly
    solves already) takes a smaller step, and the step size carries the
    reward's units.

    Args:
        advantages, mask: `[tasks, rollouts, T]`; the statistics are taken
            over the rollouts and steps of each task where `mask` is 1.
        scale: divide by the standard deviation after centring.

    Returns:
        `[tasks, rollouts, T]`, zero where `mask` is 0.
    """
    count = tf.maximum(tf.reduce_sum(mask, axis=[-2, -1], keepdims=True), 1.0)
    mean = tf.reduce_sum(advantages * mask, axis=[-2, -1], keepdims=True) / count
    centred = advantages - mean
    if not scale:
        return centred * mask
    variance = tf.reduce_sum(tf.square(centred) * mask, axis=[-2, -1], keepdims=True) / count
    return centred / (tf.sqrt(variance) + epsilon) * mask
