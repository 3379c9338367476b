import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import random_batch, tiny_policy
from tfmeta import adaptation
from tfmeta.rl import TRPO, policy_gradient
from tfmeta.rl.distributions import DiagonalGaussian
from tfmeta.rl.trpo import kl_hessian_vector_product

DISTRIBUTION = DiagonalGaussian(2)


def _meta_problem():
    """A tiny float64 policy, its outputs after one inner step as a function of the weights, and
    TRPO's objectives (one task, without `TaskBatchedModel`: the reference differentiates the
    KL three times, which is quicker to build on the plain model)."""
    policy = tiny_policy()
    pre, post = random_batch(tasks=1, seed=1), random_batch(tasks=1, seed=2)
    inner_loss = policy_gradient.inner_loss(DISTRIBUTION)

    def outputs_fn(params):
        def loss(targets, outputs):
            return inner_loss(targets, tf.reshape(outputs, pre.observations.shape[:3] + [4]))

        adapted, _ = adaptation.gradient_step(
            policy,
            loss,
            params,
            [],
            tf.reshape(pre.observations, [-1, 2]),
            pre.targets,
            learning_rates=[0.5] * len(params),
        )
        outputs, _ = policy.stateless_call(adapted, [], tf.reshape(post.observations, [-1, 2]))
        return tf.reshape(outputs, post.observations.shape[:3] + [4])

    params, _ = adaptation.initial_weights(policy)
    old = tf.stop_gradient(outputs_fn(params))

    def surrogate_fn(outputs):
        return policy_gradient.likelihood_ratio_surrogate(DISTRIBUTION, old, outputs, post)

    def kl_fn(outputs):
        return policy_gradient.mean_kl(DISTRIBUTION, old, outputs, post.mask)

    return policy, params, old, outputs_fn, surrogate_fn, kl_fn


def test_kl_hessian_vector_product_equals_differentiating_the_kl_twice():
    policy, params, old, outputs_fn, _, kl_fn = _meta_problem()
    size = sum(p.shape.num_elements() for p in params)
    vector = tf.random.stateless_normal([size], [1, 1], dtype=tf.float64)

    def both(vector):
        tangent = tf.split(vector, [p.shape.num_elements() for p in params])
        tangent = [tf.reshape(t, p.shape) for t, p in zip(tangent, params)]
        with tf.GradientTape() as outer:
            outer.watch(params)
            with tf.GradientTape() as inner:
                inner.watch(params)
                kl = kl_fn(outputs_fn(params))
            grads = inner.gradient(kl, params)
            directional = tf.add_n([tf.reduce_sum(g * t) for g, t in zip(grads, tangent)])
        exact = tf.concat([tf.reshape(h, [-1]) for h in outer.gradient(directional, params)], 0)
        return exact, kl_hessian_vector_product(params, outputs_fn, kl_fn, old, vector)

    exact, product = both(vector)
    np.testing.assert_allclose(product, exact, rtol=1e-8, atol=1e-12)


def test_step_stays_within_the_trust_region_and_raises_the_surrogate():
    policy, params, _, outputs_fn, surrogate_fn, kl_fn = _meta_problem()
    optimizer = TRPO(max_kl=0.01)
    optimizer.build(policy.trainable_variables)
    stats = optimizer.trust_region_step(policy.trainable_variables, outputs_fn, surrogate_fn, kl_fn)
    new_params, _ = adaptation.initial_weights(policy)

    def after(p):
        return surrogate_fn(outputs_fn(p)), kl_fn(outputs_fn(p))

    surrogate_after, kl_after = after(new_params)
    surrogate_before, _ = after(params)
    assert float(stats["step_fraction"]) > 0.0
    assert 0.0 < float(kl_after) <= 0.01
    assert float(surrogate_after) > float(surrogate_before)
    np.testing.assert_allclose(stats["surrogate_after"], surrogate_after, rtol=1e-10)
    assert int(optimizer.iterations) == 1


def test_weights_stay_when_no_step_raises_the_surrogate():
    policy, params, old, outputs_fn, _, kl_fn = _meta_problem()

    def at_maximum(outputs):
        return -tf.reduce_mean(tf.square(outputs - old))

    optimizer = TRPO(max_kl=0.01)
    optimizer.build(policy.trainable_variables)
    stats = optimizer.trust_region_step(policy.trainable_variables, outputs_fn, at_maximum, kl_fn)
    assert float(stats["step_fraction"]) == 0.0
    for before, variable in zip(params, policy.trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), before.numpy())
    assert int(optimizer.iterations) == 1


def test_plain_gradients_are_refused_with_the_call_to_use():
    variable = keras.Variable([1.0])
    optimizer = TRPO()
    with pytest.raises(NotImplementedError, match="trust_region_step"):
        optimizer.apply([tf.constant([0.5])], [variable])


@pytest.mark.parametrize(
    "arguments",
    [dict(max_kl=0.0), dict(backtrack_ratio=1.0), dict(cg_iterations=0), dict(line_search_steps=0)],
)
def test_bad_settings_are_rejected(arguments):
    with pytest.raises(ValueError, match="Expected"):
        TRPO(**arguments)


def test_config_round_trip():
    optimizer = TRPO(max_kl=0.05, cg_iterations=7, backtrack_ratio=0.5)
    restored = TRPO.from_config(optimizer.get_config())
    assert (restored.max_kl, restored.cg_iterations, restored.backtrack_ratio) == (0.05, 7, 0.5)
