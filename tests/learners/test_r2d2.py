"""R2-D2 and LR-D2: the closed-form ridge head and the Newton logistic head against direct
float64 solves and finite differences."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.learners import r2d2


def test_ridge_regression_equals_a_direct_least_squares_solve_in_float64():
    rng = np.random.default_rng(0)
    x, y, l2 = rng.standard_normal((6, 11)), rng.standard_normal((6, 3)), 0.37
    weights = r2d2.ridge_regression(tf.constant(x), tf.constant(y), tf.constant(l2, tf.float64))
    # min |X W - Y|^2 + l2 |W|^2 is the least-squares problem [X; sqrt(l2) I] W = [Y; 0].
    stacked_x = np.concatenate([x, np.sqrt(l2) * np.eye(11)])
    stacked_y = np.concatenate([y, np.zeros((11, 3))])
    expected, *_ = np.linalg.lstsq(stacked_x, stacked_y, rcond=None)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-10, atol=1e-12)


def float64_r2d2(ways=3, **options):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((4,), dtype="float64"),
                            keras.layers.Dense(5, activation="tanh", dtype="float64")])
    learner = tfmeta.R2D2(net, ways=ways, **{**dict(l2=0.5, scale=2.0, bias=0.1), **options})
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner


@pytest.mark.parametrize("options", [{}, dict(head="logistic", l2=0.05, newton_steps=3)])
def test_head_gradient_with_respect_to_the_embeddings_equals_finite_differences(options):
    learner = float64_r2d2(**options)
    rng = np.random.default_rng(1)
    support, queries = rng.standard_normal((6, 5)), rng.standard_normal((4, 5))
    support_y, query_y = np.array([0, 1, 2, 0, 1, 2]), np.array([2, 0, 1, 1])

    def loss(support, queries):
        scores, _ = learner.head(support, tf.constant(support_y), queries, 3, [], False)
        return learner.task_loss(tf.constant(query_y), scores)

    support_t, queries_t = tf.constant(support), tf.constant(queries)
    with tf.GradientTape() as tape:
        tape.watch([support_t, queries_t])
        value = loss(support_t, queries_t)
    analytic = tape.gradient(value, [support_t, queries_t])
    for index, array in enumerate((support, queries)):
        numeric = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            for sign in (1, -1):
                shifted = [support.copy(), queries.copy()]
                shifted[index][position] += sign * 1e-6
                numeric[position] += sign * float(loss(*map(tf.constant, shifted))) / 2e-6
        np.testing.assert_allclose(analytic[index].numpy(), numeric, rtol=1e-6, atol=1e-9)


def test_learner_scores_are_the_scaled_ridge_fit_with_a_bias_column():
    learner = float64_r2d2()
    rng = np.random.default_rng(2)
    task = {"support_x": tf.constant(rng.standard_normal((6, 4))),
            "support_y": tf.constant([0, 1, 2, 2, 1, 0]),
            "query_x": tf.constant(rng.standard_normal((3, 4)))}
    scores, _ = learner.adapt_and_predict(task, learner.read_state(), training=False)

    def features(x):
        return np.concatenate([learner.model(x).numpy(), np.ones((len(x), 1))], 1)

    x, n = features(task["support_x"]), 6
    y = np.eye(3)[task["support_y"].numpy()]
    weights = np.linalg.solve(x.T @ x / n + 0.5 * np.eye(6), x.T @ y / n)  # primal form
    np.testing.assert_allclose(scores.numpy(), 2.0 * features(task["query_x"]) @ weights + 0.1,
                               rtol=1e-9)


def test_ridge_penalty_scale_and_bias_are_meta_learned_unless_fixed():
    learner = float64_r2d2()
    assert [v.name for v in learner.meta_variables[-3:]] == ["scale", "bias", "log_l2"]
    np.testing.assert_allclose(learner.l2.numpy(), 0.5)
    net = learner.model
    fixed = tfmeta.R2D2(net, l2=0.5, learn_l2=False)
    assert "log_l2" not in [v.name for v in fixed.meta_variables]
    assert "log_l2" not in [v.name for v in fixed.trainable_variables]


def test_output_bias_has_an_exactly_zero_meta_gradient_under_the_softmax_loss():
    # One number added to every class's score leaves the softmax, so the loss, unchanged.
    learner = float64_r2d2()
    rng = np.random.default_rng(4)
    task = {"support_x": tf.constant(rng.standard_normal((6, 4))),
            "support_y": tf.constant([0, 1, 2, 2, 1, 0]),
            "query_x": tf.constant(rng.standard_normal((5, 4))),
            "query_y": tf.constant([2, 0, 1, 1, 0])}
    with tf.GradientTape() as tape:
        scores, _ = learner.adapt_and_predict(task, learner.read_state(), training=True)
        loss = learner.task_loss(task["query_y"], scores)
    scale, bias = tape.gradient(loss, [learner.scale, learner.bias])
    assert abs(float(scale)) > 1e-6
    assert abs(float(bias)) < 1e-12  # rounding only


def logistic_fit_in_float64(x, y, l2, steps=50):
    """`argmin_w sum_i log(1 + exp(x_i w)) - y_i x_i w + l2/2 |w|^2` per column of `y`, by Newton's
    method in the primal (`[D, D]` Hessians)."""
    weights = np.zeros((x.shape[1], y.shape[1]))
    for column in range(y.shape[1]):
        w = weights[:, column]
        for _ in range(steps):
            s = 1 / (1 + np.exp(-x @ w))
            gradient = x.T @ (s - y[:, column]) + l2 * w
            hessian = (x.T * (s * (1 - s))) @ x + l2 * np.eye(x.shape[1])
            w -= np.linalg.solve(hessian, gradient)
        np.testing.assert_allclose(x.T @ (s - y[:, column]) + l2 * w, 0, atol=1e-12)
    return weights


def test_logistic_regression_equals_a_direct_newton_solve_in_float64():
    rng = np.random.default_rng(3)
    x, y, l2 = rng.standard_normal((7, 12)), np.eye(3)[[0, 1, 2, 0, 1, 2, 0]], 0.3
    weights = r2d2.logistic_regression(tf.constant(x), tf.constant(y),
                                       tf.constant(l2, tf.float64), steps=15)
    np.testing.assert_allclose(weights.numpy(), logistic_fit_in_float64(x, y, l2), rtol=1e-9,
                               atol=1e-12)
    one_step = r2d2.logistic_regression(tf.constant(x), tf.constant(y), l2, steps=1)
    assert not np.allclose(one_step.numpy(), weights.numpy(), atol=1e-3)  # the steps matter


def test_logistic_learner_scores_are_the_scaled_fit_of_the_mean_log_loss():
    learner = float64_r2d2(head="logistic", newton_steps=15)
    rng = np.random.default_rng(2)
    task = {"support_x": tf.constant(3 * rng.standard_normal((6, 4))),
            "support_y": tf.constant([0, 1, 2, 2, 1, 0]),
            "query_x": tf.constant(rng.standard_normal((3, 4)))}
    scores, _ = learner.adapt_and_predict(task, learner.read_state(), training=False)

    def features(x):
        return np.concatenate([learner.model(x).numpy(), np.ones((len(x), 1))], 1)

    y = np.eye(3)[task["support_y"].numpy()]
    # mean log-loss + l2/2 |w|^2 is the sum with penalty S * l2.
    weights = logistic_fit_in_float64(features(task["support_x"]), y, 6 * 0.5)
    np.testing.assert_allclose(scores.numpy(), 2.0 * features(task["query_x"]) @ weights + 0.1,
                               rtol=1e-9)
    permuted = [4, 0, 5, 2, 1, 3]  # the support set in another order
    task = {**task, "support_x": tf.gather(task["support_x"], permuted),
            "support_y": tf.gather(task["support_y"], permuted)}
    reordered, _ = learner.adapt_and_predict(task, learner.read_state(), training=False)
    np.testing.assert_allclose(reordered.numpy(), scores.numpy(), rtol=1e-12)


def test_logistic_head_defaults_and_config_round_trip():
    ridge = float64_r2d2()
    assert (ridge.head_kind, ridge.newton_steps) == ("ridge", None)
    logistic = float64_r2d2(head="logistic")
    assert logistic.newton_steps == r2d2.DEFAULT_NEWTON_STEPS
    config = float64_r2d2(head="logistic", newton_steps=2).get_config()
    restored = tfmeta.R2D2.from_config(config)
    assert (restored.head_kind, restored.newton_steps) == ("logistic", 2)


def test_logistic_regression_second_derivatives_equal_finite_differences():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((5, 3)), np.eye(3)[[0, 1, 2, 0, 1]]
    direction = rng.standard_normal(x.shape)
    queries = tf.constant(rng.standard_normal((4, 3)))

    def penalty_gradient(features):
        """`d loss / d l2` of a loss of the fitted weights."""
        l2 = tf.constant(0.2, tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(l2)
            weights = r2d2.logistic_regression(features, tf.constant(y), l2, steps=3)
            loss = tf.reduce_sum(tf.tanh(tf.matmul(queries, weights)))
        return tape.gradient(loss, l2)

    features = tf.constant(x)
    with tf.GradientTape() as outer:
        outer.watch(features)
        value = penalty_gradient(features)
    analytic = np.sum(outer.gradient(value, features).numpy() * direction)
    numeric = (penalty_gradient(tf.constant(x + 1e-5 * direction))
               - penalty_gradient(tf.constant(x - 1e-5 * direction))) / 2e-5
    np.testing.assert_allclose(analytic, float(numeric), rtol=1e-6)
