"""The inner policy-gradient step against finite differences of its surrogate (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import random_batch, small_learner, tiny_policy
from tfmeta import adaptation, rl
from tfmeta.rl import policy_gradient
from tfmeta.rl.distributions import DiagonalGaussian
from tfmeta.rl.task_batched import TaskBatchedModel

EPSILON = 1e-6


def _task_surrogate(policy, batch, task):
    """`params -> -mean over task's steps of log pi(a|s) * A` for one task, unbatched."""
    distribution = DiagonalGaussian(2)

    @tf.function
    def surrogate(params):
        flat = tf.reshape(batch.observations[task], [-1, 2])
        outputs, _ = policy.stateless_call(params, [], flat)
        outputs = tf.reshape(outputs, batch.observations.shape[1:3] + [4])
        log_probs = distribution.log_prob(outputs, batch.actions[task])
        mask = batch.mask[task]
        return -tf.reduce_sum(log_probs * batch.advantages[task] * mask) / tf.reduce_sum(mask)

    return surrogate


def test_inner_step_moves_every_weight_by_minus_rate_times_the_finite_difference_gradient():
    policy = tiny_policy()
    learner = small_learner(policy)
    batch = random_batch(tasks=2)
    rate = 0.25
    params, _ = adaptation.initial_weights(policy)
    adapted = learner.inner_step(TaskBatchedModel.tile(params, 2), batch, rate)
    for task in range(2):
        surrogate = _task_surrogate(policy, batch, task)
        for index, weight in enumerate(params):
            flat = weight.numpy().reshape(-1)
            numeric = np.zeros_like(flat)
            for k in range(flat.size):
                shifted = []
                for sign in (1.0, -1.0):
                    moved = flat.copy()
                    moved[k] += sign * EPSILON
                    trial = list(params)
                    trial[index] = tf.constant(moved.reshape(weight.shape))
                    shifted.append(float(surrogate(trial)))
                numeric[k] = (shifted[0] - shifted[1]) / (2 * EPSILON)
            step = (flat - adapted[index][task].numpy().reshape(-1)) / rate
            np.testing.assert_allclose(step, numeric, rtol=1e-6, atol=1e-8)


def test_inner_loss_sums_tasks_and_weights_only_valid_steps():
    batch = random_batch(tasks=2)
    distribution = DiagonalGaussian(2)
    outputs = tf.random.stateless_normal(
        batch.observations.shape[:3] + [4], [5, 6], dtype=tf.float64
    )
    loss = policy_gradient.inner_loss(distribution)(batch.targets, outputs)
    log_probs = distribution.log_prob(outputs, batch.actions).numpy()
    expected = sum(
        -(log_probs[t] * batch.advantages[t].numpy())[batch.mask[t].numpy() > 0].mean()
        for t in range(2)
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-12)
    changed = batch._replace(actions=tf.where(batch.mask[..., None] > 0, batch.actions, 99.0))
    np.testing.assert_allclose(
        policy_gradient.inner_loss(distribution)(changed.targets, outputs), loss
    )


def test_categorical_inner_step_equals_finite_differences():
    keras.utils.set_random_seed(1)
    policy = rl.categorical_mlp_policy(2, 3, hidden_units=(4,), dtype="float64")
    batch = random_batch(tasks=2)
    actions = tf.random.stateless_uniform(batch.mask.shape, [3, 4], 0, 3, dtype=tf.int32)
    batch = batch._replace(actions=actions)
    loss = policy_gradient.inner_loss(rl.Categorical(3))
    params, _ = adaptation.initial_weights(policy)
    adapted, _ = adaptation.gradient_step(
        TaskBatchedModel(policy),
        loss,
        TaskBatchedModel.tile(params, 2),
        [],
        batch.observations,
        batch.targets,
        learning_rates=[1.0] * len(params),
    )

    @tf.function
    def task_loss(trial, task):
        outputs, _ = policy.stateless_call(trial, [], tf.reshape(batch.observations[task], [-1, 2]))
        outputs = tf.reshape(outputs, [1, 2, 4, 3])
        one = tuple(t[task : task + 1] for t in batch.targets)
        return loss(one, outputs)

    direction = [
        tf.random.stateless_normal(p.shape, [9, i], dtype=tf.float64) for i, p in enumerate(params)
    ]
    for task in range(2):
        plus = task_loss([p + EPSILON * d for p, d in zip(params, direction)], task)
        minus = task_loss([p - EPSILON * d for p, d in zip(params, direction)], task)
        numeric = (float(plus) - float(minus)) / (2 * EPSILON)
        analytic = sum(
            float(tf.reduce_sum((p - a[task]) * d)) for p, a, d in zip(params, adapted, direction)
        )
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_an_unknown_inner_objective_is_rejected_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"inner objective in \('log_likelihood', 'likelihood_rat"):
        policy_gradient.inner_loss(DiagonalGaussian(2), "dice")
