"""PolicyMAML with Meta-SGD's learned step sizes: meta-gradients, training, saving, exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import random_batch, small_learner, tiny_policy
from tfmeta import adaptation, rl
from tfmeta.exporters import custom_operators
from tfmeta.exporters.policy import adapted_parameters, export_policy
from tfmeta.exporters.policy_tflite import example_rollouts, export_policy_tflite
from tfmeta.exporters.tflite import interpreter
from tfmeta.rl import policy_gradient, training
from tfmeta.rl.distributions import DiagonalGaussian
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_batched import TaskBatchedModel

EPSILON = 1e-6


def _learned(policy=None, **kwargs):
    return small_learner(policy, learned_inner_learning_rates="per_parameter", **kwargs)


def _rates(learner):
    return [v.numpy().copy() for v in learner.inner_learning_rate_variables]


def _random_rates(learner, seed=0):
    """Distinct positive step sizes, so that a test sees which weight takes which."""
    rng = np.random.default_rng(seed)
    for variable in learner.inner_learning_rate_variables:
        variable.assign(rng.uniform(0.05, 0.3, variable.shape).astype(variable.dtype))


def test_the_rates_start_at_the_inner_learning_rate_one_per_weight():
    learner = _learned(inner_learning_rate=0.3)
    weights = learner.policy.trainable_variables
    assert [r.shape for r in _rates(learner)] == [tuple(w.shape) for w in weights]
    assert all(np.all(r == np.float32(0.3)) for r in _rates(learner))
    assert learner.meta_variables == list(weights) + learner.inner_learning_rate_variables
    assert small_learner().inner_learning_rate_variables == []


def test_the_meta_gradient_wrt_weights_and_rates_equals_finite_differences():
    policy = tiny_policy()
    learner = _learned(policy, inner_learning_rate=0.5)
    _random_rates(learner)
    pre, post = random_batch(tasks=2, seed=1), random_batch(tasks=2, seed=2)
    shape = post.observations.shape[:3] + [4]
    old = tf.random.stateless_normal(shape, [7, 8], dtype=tf.float64) * 0.3
    weights = len(policy.trainable_variables)
    objective = tf.function(
        lambda values: policy_gradient.likelihood_ratio_surrogate(
            DiagonalGaussian(2),
            old,
            learner.adapted_outputs(
                values[:weights], [pre], post.observations, values[weights:]
            ),
            post,
        )
    )
    values = [tf.convert_to_tensor(v.value) for v in learner.meta_variables]
    with tf.GradientTape() as tape:
        tape.watch(values)
        value = objective(values)
    gradient = tape.gradient(value, values)
    assert any(float(tf.reduce_max(tf.abs(g))) > 1e-3 for g in gradient[weights:])
    for k in range(4):
        direction = [
            tf.random.stateless_normal(v.shape, [k, i], dtype=v.dtype)
            for i, v in enumerate(values)
        ]
        plus = objective([v + EPSILON * d for v, d in zip(values, direction)])
        minus = objective([v - EPSILON * d for v, d in zip(values, direction)])
        numeric = (float(plus) - float(minus)) / (2 * EPSILON)
        analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(gradient, direction))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_evaluation_scales_the_learned_rates_by_the_evaluation_step_sizes():
    policy = tiny_policy(seed=3, dtype="float32")
    learned = _learned(policy, eval_inner_steps=2, eval_inner_learning_rate=[0.1, 0.05])
    for variable in learned.inner_learning_rate_variables:
        variable.assign(tf.fill(variable.shape, 0.2))
    plain = small_learner(policy, eval_inner_steps=2, eval_inner_learning_rate=[0.2, 0.1])
    tasks, seed = learned.family.sample_tasks(3, seed=0), tf.constant([0, 1])
    np.testing.assert_allclose(
        learned.adaptation_returns(tasks, seed), plain.adaptation_returns(tasks, seed), rtol=1e-5
    )


@pytest.mark.parametrize(
    "optimizer", [lambda: rl.TRPO(max_kl=0.01), lambda: keras.optimizers.Adam(1e-2)],
    ids=["trpo", "clipped_surrogate"],
)
def test_meta_training_updates_the_rates_with_the_weights(optimizer):
    learner = _learned(tiny_policy(seed=3, dtype="float32"), outer_steps=2)
    learner.compile(optimizer=optimizer())
    rates, weights = _rates(learner), learner.policy.get_weights()
    history = learner.fit(
        learner.family.task_batches(2, seed=0), steps_per_epoch=2, epochs=1, verbose=0
    )
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert any(not np.array_equal(a, b) for a, b in zip(rates, _rates(learner)))
    assert any(not np.array_equal(a, b) for a, b in zip(weights, learner.policy.get_weights()))
    if isinstance(learner.optimizer, rl.TRPO):
        assert 0.0 < history.history["kl"][0] <= 0.01


def test_save_load_and_the_best_epoch_keep_the_rates(tmp_path):
    learner = _learned(tiny_policy(seed=3, dtype="float32"), eval_inner_steps=1)
    learner.compile(optimizer=rl.TRPO(max_kl=0.01))
    by_epoch = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: by_epoch.append(_rates(learner))
    )
    run = training.train(learner, tmp_path / "run", iterations=3, meta_batch_size=2,
                         iterations_per_epoch=1, callbacks=[record], verbose=0)
    learner.save(tmp_path / "learner.keras")
    loaded = keras.saving.load_model(tmp_path / "learner.keras")
    assert loaded.learned_inner_learning_rates == "per_parameter"
    for a, b in zip(_rates(learner), _rates(loaded)):
        np.testing.assert_array_equal(a, b)
    for variable in learner.inner_learning_rate_variables:
        variable.assign(tf.zeros_like(variable))
    training.restore_best(learner, tmp_path / "run")
    for a, b in zip(by_epoch[run["best"]["meta_iterations"] - 1], _rates(learner)):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def learned_learner():
    learner = _learned(tiny_policy(seed=3, dtype="float32"), eval_inner_steps=2,
                       eval_inner_learning_rate=[0.1, 0.05])
    _random_rates(learner, seed=5)
    return learner


def _adapted(learner, rollouts_list, scales):
    params = TaskBatchedModel.tile(adaptation.initial_weights(learner.policy)[0], 1)
    rates = [tf.constant(r) for r in _rates(learner)]
    for rollouts, scale in zip(rollouts_list, scales):
        batch = learner.policy_gradient_batch(
            tf.nest.map_structure(lambda x: tf.constant(x)[None], rollouts)
        )
        params = learner.inner_step(params, batch, [scale * r for r in rates])
    return params


def test_the_saved_models_adapt_takes_the_learned_rates(learned_learner, tmp_path):
    learner = learned_learner
    served = tf.saved_model.load(export_policy(learner, tmp_path / "models"))
    rollouts = example_rollouts(learner, 3, seed=1)
    observations = np.random.default_rng(2).normal(size=(4, 2)).astype(np.float32)
    response = served.signatures["adapt"](
        **{k: tf.constant(v) for k, v in rollouts._asdict().items()},
        new_observations=tf.constant(observations),
    )
    adapted = _adapted(learner, [rollouts], [1.0])
    expected, _ = learner.batched.stateless_call(adapted, [], tf.constant(observations)[None])
    np.testing.assert_allclose(response["distribution"], expected[0], atol=1e-5)
    plain = adaptation.initial_weights(learner.policy)[0]
    unadapted, _ = adaptation.forward(learner.policy, plain, [], observations, False)
    assert not np.allclose(response["distribution"], unadapted, atol=1e-3)


def test_the_device_model_adapts_and_trains_with_the_learned_rates(learned_learner, tmp_path):
    learner = learned_learner
    path = tmp_path / "policy.tflite"
    info = export_policy_tflite(learner, path, rollouts=3)
    content = path.read_bytes()
    assert custom_operators(content) == []
    assert info["learned_inner_learning_rates"] == "per_parameter"
    model = interpreter(content)
    runners = {name: model.get_signature_runner(name) for name in model.get_signature_list()}
    first, second = example_rollouts(learner, 3, seed=2), example_rollouts(learner, 3, seed=3)
    observation = np.array([[0.2, -0.1]], np.float32)
    received = runners["adapt"](**first._asdict(), new_observations=observation)
    expected = adapted_parameters(
        learner, Rollouts(*[tf.constant(x) for x in first]), tf.constant(observation)
    )
    np.testing.assert_allclose(received["distribution"], expected, atol=1e-4)
    runners["reset"]()
    runners["train_step"](**first._asdict())
    runners["train_step"](**second._asdict())
    adapted = _adapted(learner, [first, second], [1.0, 0.5])  # 0.05 / 0.1 at the second step
    expected, _ = learner.batched.stateless_call(adapted, [], tf.constant(observation)[None])
    np.testing.assert_allclose(
        runners["act"](observations=observation)["distribution"], expected[0], atol=1e-4
    )


def test_an_unknown_kind_of_learned_rates_is_refused():
    with pytest.raises(ValueError, match="learned_inner_learning_rates.*per_layer"):
        small_learner(learned_inner_learning_rates="per_layer")
