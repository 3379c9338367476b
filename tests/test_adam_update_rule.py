"""`adaptation.Adam`, the inner-loop update rule, against TF1's AdamOptimizer formula."""

import numpy as np
import pytest
import tensorflow as tf

from tfmeta import adaptation

SHAPES = [(3, 3, 1, 4), (4,), (2, 5)]


def _adam_per_weight(grads_per_step, rates, beta1, beta2, epsilon):
    """The updates of TF1's AdamOptimizer, weight by weight in float64 numpy."""
    first = [np.zeros(shape) for shape in SHAPES]
    second = [np.zeros(shape) for shape in SHAPES]
    all_updates = []
    for t, grads in enumerate(grads_per_step, start=1):
        updates = []
        for i, (grad, rate) in enumerate(zip(grads, rates)):
            first[i] = beta1 * first[i] + (1 - beta1) * grad
            second[i] = beta2 * second[i] + (1 - beta2) * grad**2
            step_size = rate * np.sqrt(1 - beta2**t) / (1 - beta1**t)
            updates.append(step_size * first[i] / (np.sqrt(second[i]) + epsilon))
        all_updates.append(updates)
    return all_updates, first, second


@pytest.mark.parametrize("beta1", [0.0, 0.9])
@pytest.mark.parametrize("compiled", [False, True])
def test_updates_equal_per_weight_adam_in_float64(beta1, compiled):
    rng = np.random.default_rng(0)
    grads_per_step = [[rng.normal(size=shape) for shape in SHAPES] for _ in range(3)]
    # A scalar rate, a rate per element (Meta-SGD style) and another scalar.
    rates = [0.01, rng.uniform(0.001, 0.1, size=SHAPES[1]), 0.003]
    rule = adaptation.Adam(beta1=beta1, beta2=0.99, epsilon=1e-6)

    def run(grads_per_step):
        state = rule.init([tf.zeros(shape, tf.float64) for shape in SHAPES])
        tf_rates = [tf.constant(rate, tf.float64) for rate in rates]
        all_updates = []
        for grads in grads_per_step:
            updates, state = rule.updates(grads, tf_rates, state)
            all_updates.append(updates)
        return all_updates, state

    if compiled:
        run = tf.function(run)
    got, state = run([[tf.constant(g) for g in grads] for grads in grads_per_step])
    want, first, second = _adam_per_weight(grads_per_step, rates, beta1, 0.99, 1e-6)
    for got_step, want_step in zip(got, want):
        for got_update, want_update in zip(got_step, want_step):
            np.testing.assert_allclose(got_update.numpy(), want_update, rtol=1e-12, atol=0)
    n = len(SHAPES)  # the state: [t, *first moments, *second moments]
    step_count, got_first, got_second = state[0], state[1 : 1 + n], state[1 + n :]
    assert step_count.numpy() == 3
    for got_moment, want_moment in zip(got_first + got_second, first + second):
        np.testing.assert_allclose(got_moment.numpy(), want_moment, rtol=1e-12, atol=0)
