"""Second- and first-order meta-gradients through the inner policy-gradient step (float64)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import random_batch, small_learner, tiny_policy
from tfmeta import adaptation
from tfmeta.rl import policy_gradient
from tfmeta.rl.distributions import DiagonalGaussian
from tfmeta.rl.task_batched import TaskBatchedModel

EPSILON = 1e-6


def _objective(learner, pre, post, old):
    distribution = DiagonalGaussian(2)
    return tf.function(
        lambda params: policy_gradient.likelihood_ratio_surrogate(
            distribution, old, learner.adapted_outputs(params, [pre], post.observations), post
        )
    )


def _directional_derivatives(objective, params, directions):
    values = []
    for direction in directions:
        plus = objective([p + EPSILON * d for p, d in zip(params, direction)])
        minus = objective([p - EPSILON * d for p, d in zip(params, direction)])
        values.append((float(plus) - float(minus)) / (2 * EPSILON))
    return np.array(values)


def _random_directions(params, count=4):
    return [
        [tf.random.stateless_normal(p.shape, [k, i], dtype=p.dtype) for i, p in enumerate(params)]
        for k in range(count)
    ]


def _gradient(objective, params):
    with tf.GradientTape() as tape:
        tape.watch(params)
        value = objective(params)
    return tape.gradient(value, params)


def _dot(gradient, direction):
    return sum(float(tf.reduce_sum(g * d)) for g, d in zip(gradient, direction))


def _assert_equals_finite_differences(gradient, objective, params):
    """Along random directions; returns them."""
    directions = _random_directions(params)
    numeric = _directional_derivatives(objective, params, directions)
    np.testing.assert_allclose(
        [_dot(gradient, d) for d in directions], numeric, rtol=1e-6, atol=1e-9
    )
    return directions


def _paper_gradient(policy, pre, post, old, params):
    """The second-order meta-gradient with the paper's inner objective."""
    learner = small_learner(policy, inner_learning_rate=0.5)
    return _gradient(_objective(learner, pre, post, old), params)


@pytest.fixture
def setting():
    policy = tiny_policy()
    pre, post = random_batch(tasks=2, seed=1), random_batch(tasks=2, seed=2)
    params, _ = adaptation.initial_weights(policy)
    old = (
        tf.random.stateless_normal(post.observations.shape[:3] + [4], [7, 8], dtype=tf.float64)
        * 0.3
    )
    return policy, pre, post, params, old


def test_second_order_meta_gradient_equals_finite_differences(setting):
    policy, pre, post, params, old = setting
    learner = small_learner(policy, inner_learning_rate=0.5)
    objective = _objective(learner, pre, post, old)
    _assert_equals_finite_differences(_gradient(objective, params), objective, params)


def test_first_order_meta_gradient_holds_the_inner_gradient_fixed(setting):
    policy, pre, post, params, old = setting
    learner = small_learner(policy, inner_learning_rate=0.5, first_order=True)
    adapted = learner.inner_step(TaskBatchedModel.tile(params, 2), pre, 0.5)
    shifts = [
        a - TaskBatchedModel.tile([p], 2)[0] for a, p in zip(adapted, params)
    ]  # -lr * g(params)
    distribution = DiagonalGaussian(2)

    @tf.function
    def shifted_objective(trial):  # the adapted weights with the inner gradient frozen at `params`
        stacked = [TaskBatchedModel.tile([t], 2)[0] + s for t, s in zip(trial, shifts)]
        outputs, _ = learner.batched.stateless_call(stacked, [], post.observations)
        return policy_gradient.likelihood_ratio_surrogate(distribution, old, outputs, post)

    gradient = _gradient(_objective(learner, pre, post, old), params)
    directions = _assert_equals_finite_differences(gradient, shifted_objective, params)
    second_order = _paper_gradient(policy, pre, post, old, params)
    assert not np.allclose(
        _dot(second_order, directions[0]), _dot(gradient, directions[0]), rtol=1e-3
    )


def test_the_likelihood_ratio_objective_takes_the_same_inner_step(setting):
    policy, pre, _, params, _ = setting
    stacked = TaskBatchedModel.tile(params, 2)
    paper = small_learner(policy, inner_learning_rate=0.5).inner_step(stacked, pre, 0.5)
    ratio = small_learner(
        policy, inner_learning_rate=0.5, inner_objective="likelihood_ratio"
    ).inner_step(stacked, pre, 0.5)
    for a, b in zip(paper, ratio):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


def test_likelihood_ratio_meta_gradient_equals_finite_differences_with_the_sampler_fixed(setting):
    """Its meta-gradient is that of the inner step on `pi / pi_sampling`, `pi_sampling` frozen."""
    policy, pre, post, params, old = setting
    learner = small_learner(policy, inner_learning_rate=0.5, inner_objective="likelihood_ratio")
    distribution = DiagonalGaussian(2)
    sampler_outputs, _ = learner.batched.stateless_call(
        TaskBatchedModel.tile(params, 2), [], pre.observations
    )
    sampler_log_probs = distribution.log_prob(sampler_outputs, pre.actions)

    def ratio_loss(targets, outputs):  # the sampling policy's log-probabilities as constants
        actions, advantages, mask = targets
        ratio = tf.exp(distribution.log_prob(outputs, actions) - sampler_log_probs)
        return tf.reduce_sum(policy_gradient.task_means(-ratio * advantages, mask))

    @tf.function
    def objective_with_fixed_sampler(trial):
        adapted, _ = adaptation.gradient_step(
            learner.batched,
            ratio_loss,
            TaskBatchedModel.tile(trial, 2),
            [],
            pre.observations,
            pre.targets,
            learning_rates=[0.5] * len(trial),
        )
        outputs, _ = learner.batched.stateless_call(adapted, [], post.observations)
        return policy_gradient.likelihood_ratio_surrogate(distribution, old, outputs, post)

    gradient = _gradient(_objective(learner, pre, post, old), params)
    directions = _assert_equals_finite_differences(gradient, objective_with_fixed_sampler, params)
    paper = _paper_gradient(policy, pre, post, old, params)
    assert not np.allclose(_dot(paper, directions[0]), _dot(gradient, directions[0]), rtol=1e-3)
