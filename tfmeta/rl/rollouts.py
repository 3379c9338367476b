"""`Rollouts`: a batch of fixed-length trajectories, padded after termination."""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class Rollouts(NamedTuple):
    """Trajectories of one or more tasks, as tensors (a `tf.nest` structure).

    The leading axes are free (task, rollout); the axis before the feature
    axis is time. A trajectory that terminates before the horizon is padded:
    `mask` is 1.0 for the steps that happened and 0.0 after, and padded
    rewards are 0.

    Attributes:
        observations: `[..., T, observation_dim]`, the observation each action
            was chosen from.
        actions: `[..., T, action_dim]` floats (continuous) or `[..., T]`
            integers (discrete).
        rewards: `[..., T]`.
        mask: `[..., T]`, 1.0 where the step happened.
    """

    observations: tf.Tensor
    actions: tf.Tensor
    rewards: tf.Tensor
    mask: tf.Tensor

    def returns(self) -> tf.Tensor:
        """Undiscounted return of every trajectory: `[...]`."""
        return tf.reduce_sum(self.rewards * self.mask, axis=-1)
