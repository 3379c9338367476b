"""MAML: meta-gradients, first order, isolation of the wrapped model, saving, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import finite_differences
import tfmeta
from tfmeta import adaptation
from tfmeta.data import SinusoidTasks


def tiny_model(dtype="float64", seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((1,), dtype=dtype),
            keras.layers.Dense(4, activation="tanh", dtype=dtype),
            keras.layers.Dense(1, dtype=dtype),
        ]
    )


def sinusoid_batch(tasks=3, shots=5, dtype=tf.float64, seed=0):
    dataset = SinusoidTasks(dtype=dtype).episodes(shots, shots, meta_batch_size=tasks, seed=seed)
    return next(iter(dataset))


def compiled_maml(model, **kwargs):
    learner = tfmeta.MAML(model, **kwargs)
    learner.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return learner


def test_second_order_meta_gradient_matches_central_finite_differences():
    learner = compiled_maml(tiny_model(), inner_learning_rate=0.1, inner_steps=2)
    batch = sinusoid_batch()
    _, grads, _, _ = learner.compute_meta_gradients(batch)
    variables = learner.model.trainable_variables
    # Compiled once: each of the 26 perturbed evaluations is then a graph call, not eager.
    compiled_loss = tf.function(lambda: learner.compute_meta_gradients(batch)[0])
    numeric = finite_differences.gradients(lambda: float(compiled_loss()), variables)
    for variable, grad, expected in zip(variables, grads, numeric):
        error = np.linalg.norm(grad.numpy() - expected) / np.linalg.norm(expected)
        assert error < 1e-4, (variable.path, error)


def test_first_order_equals_gradient_with_inner_gradients_stopped():
    batch = sinusoid_batch()
    fomaml = compiled_maml(tiny_model(), inner_learning_rate=0.1, inner_steps=2, first_order=True)
    maml = compiled_maml(tiny_model(), inner_learning_rate=0.1, inner_steps=2)
    _, first_order_grads, _, _ = fomaml.compute_meta_gradients(batch)
    _, second_order_grads, _, _ = maml.compute_meta_gradients(batch)

    model = fomaml.model
    expected = [np.zeros(v.shape) for v in model.trainable_variables]
    for task in range(batch["support_x"].shape[0]):
        params, state = adaptation.initial_weights(model)
        for _ in range(2):
            _, inner_grads, state = adaptation.loss_and_gradients(
                model, fomaml.task_loss, params, state,
                batch["support_x"][task], batch["support_y"][task], wrt=range(len(params)),
            )
            params = [p - 0.1 * tf.stop_gradient(g) for p, g in zip(params, inner_grads)]
        _, query_grads, _ = adaptation.loss_and_gradients(
            model, fomaml.task_loss, params, state,
            batch["query_x"][task], batch["query_y"][task], wrt=range(len(params)),
        )
        for total, grad in zip(expected, query_grads):
            total += grad.numpy() / batch["support_x"].shape[0]

    for got, want in zip(first_order_grads, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    differences = [np.abs(a.numpy() - b.numpy()).max()
                   for a, b in zip(first_order_grads, second_order_grads)]
    assert max(differences) > 1e-6, "second-order terms should matter for a tanh network"


def bn_dropout_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(32),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1),
        ]
    )


def test_adaptation_never_changes_the_wrapped_model_variables():
    learner = compiled_maml(bn_dropout_model(), inner_learning_rate=0.01, inner_steps=3)
    batch = sinusoid_batch(dtype=tf.float32)
    before = [v.numpy().copy() for v in learner.model.variables]
    learner.predict(tf.data.Dataset.from_tensors(batch), verbose=0)
    learner.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0)
    learner.adapt(batch["support_x"][0], batch["support_y"][0])
    learner.compute_meta_gradients(batch)
    for old, variable in zip(before, learner.model.variables):
        np.testing.assert_array_equal(old, variable.numpy(), err_msg=variable.path)


def sinusoid_mlp_with(layer, seed=0):
    """MLP 40-40 with `layer` after the second hidden layer's affine map.

    (BatchNorm right after the first layer would standardise the scalar input
    within each batch and lose where on the x axis the points lie.)
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(40, activation="relu"),
                             keras.layers.Dense(40), layer, keras.layers.ReLU(),
                             keras.layers.Dense(1)])


@pytest.mark.parametrize("layer_class", [keras.layers.BatchNormalization, keras.layers.Dropout])
def test_meta_training_with_batchnorm_or_dropout_halves_the_query_loss(layer_class):
    layer = layer_class() if layer_class is keras.layers.BatchNormalization else layer_class(0.1)
    learner = tfmeta.MAML(sinusoid_mlp_with(layer), inner_learning_rate=0.01, inner_steps=1)
    learner.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    held_out = SinusoidTasks().episodes(10, 10, meta_batch_size=25, num_episodes=100, seed=1)
    initial = learner.evaluate(held_out, return_dict=True, verbose=0)["loss"]
    state_before = [v.numpy().copy() for v in learner.model.non_trainable_variables]
    learner.fit(SinusoidTasks().episodes(10, 10, meta_batch_size=10, seed=0),
                steps_per_epoch=500, epochs=1, verbose=0)
    final = learner.evaluate(held_out, return_dict=True, verbose=0)
    assert final["loss"] < 0.5 * initial, (initial, final)
    assert final["loss"] < 0.6 * final["pre_adaptation_loss"], final
    for before, variable in zip(state_before, learner.model.non_trainable_variables):
        assert not np.array_equal(before, variable.numpy()), (
            f"{variable.path} was not threaded back")


def test_each_task_draws_its_own_dropout_mask():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dropout(0.5)])
    learner = compiled_maml(model, inner_steps=0)
    ones = tf.ones((2, 4, 8))
    batch = {"support_x": ones, "support_y": ones, "query_x": ones, "query_y": ones}
    _, _, predictions, _ = learner.compute_meta_gradients(batch)
    zero_pattern = predictions.numpy() == 0
    assert not np.array_equal(zero_pattern[0], zero_pattern[1])


def test_saved_and_reloaded_learner_gives_identical_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    learner = tfmeta.MAML(model, inner_learning_rate=0.02, inner_steps=2, eval_inner_steps=4,
                          first_order=True)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    learner.fit(SinusoidTasks().episodes(5, 5, meta_batch_size=4, seed=0), steps_per_epoch=5,
                verbose=0)
    path = tmp_path / "maml.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)

    assert isinstance(restored, tfmeta.MAML)
    for name in ("inner_learning_rate", "inner_steps", "eval_inner_steps", "first_order"):
        assert getattr(restored, name) == getattr(learner, name)
    batch = sinusoid_batch(tasks=4, dtype=tf.float32, seed=3)
    dataset = tf.data.Dataset.from_tensors(batch)
    np.testing.assert_array_equal(learner.predict(dataset, verbose=0),
                                  restored.predict(dataset, verbose=0))
    np.testing.assert_array_equal(learner(batch["query_x"][0]), restored(batch["query_x"][0]))
    np.testing.assert_array_equal(learner.optimizer.iterations.numpy(),
                                  restored.optimizer.iterations.numpy())


def test_support_and_query_shape_mismatch_is_rejected():
    learner = compiled_maml(tiny_model())
    batch = dict(sinusoid_batch())
    batch["query_x"] = tf.zeros((3, 5, 2), tf.float64)
    with pytest.raises(ValueError, match="same per-example shape"):
        learner.compute_meta_gradients(batch)


def test_targets_must_match_inputs():
    learner = compiled_maml(tiny_model())
    batch = dict(sinusoid_batch())
    batch["support_y"] = tf.zeros((3, 4, 1), tf.float64)
    with pytest.raises(ValueError, match="one target per input in `support_y`"):
        learner.compute_meta_gradients(batch)


def test_empty_meta_batch_is_rejected():
    learner = compiled_maml(tiny_model())
    batch = {key: value[:0] for key, value in sinusoid_batch().items()}
    with pytest.raises(ValueError, match="at least one task"):
        learner.compute_meta_gradients(batch)


def test_missing_episode_keys_are_named():
    learner = compiled_maml(tiny_model())
    batch = dict(sinusoid_batch())
    del batch["query_y"]
    with pytest.raises(ValueError, match=r"Missing: \['query_y'\]"):
        learner.compute_meta_gradients(batch)


@pytest.mark.parametrize("name", ["inner_steps", "eval_inner_steps"])
def test_negative_inner_steps_are_rejected(name):
    message = rf"Expected `{name}` to be an integer >= 0. Received: {name}=-1"
    with pytest.raises(ValueError, match=message):
        tfmeta.MAML(tiny_model(), **{name: -1})


@pytest.mark.parametrize("value", ["0.1", None, True, [0.1]])
def test_non_float_learning_rate_is_rejected(value):
    with pytest.raises(ValueError, match="Expected `inner_learning_rate` to be a float"):
        tfmeta.MAML(tiny_model(), inner_learning_rate=value)


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_negative_or_non_finite_learning_rate_is_rejected(value):
    with pytest.raises(ValueError, match="finite float >= 0"):
        tfmeta.MAML(tiny_model(), inner_learning_rate=value)


def test_unbuilt_model_is_rejected():
    model = keras.Sequential([keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Expected a built model"):
        tfmeta.MAML(model)


def test_non_keras_model_is_rejected():
    with pytest.raises(ValueError, match="Expected a built `keras.Model`"):
        tfmeta.MAML(lambda x: x)


def test_training_without_a_loss_is_rejected():
    learner = tfmeta.MAML(tiny_model())
    with pytest.raises(ValueError, match="needs a task loss"):
        learner.adapt(tf.zeros((2, 1), tf.float64), tf.zeros((2, 1), tf.float64))
    learner.compile(optimizer="adam")
    with pytest.raises(ValueError, match="needs a task loss"):
        learner.compute_meta_gradients(sinusoid_batch())


# --------------------------------------------------------------------------------------------
# MAML++ options (Antoniou et al. 2019) and a real Omniglot run.


def test_multi_step_loss_after_annealing_equals_plain_maml():
    batch = sinusoid_batch()
    plain = compiled_maml(tiny_model(), inner_learning_rate=0.1, inner_steps=3)
    annealed = compiled_maml(tiny_model(), inner_learning_rate=0.1, inner_steps=3,
                             multi_step_loss=True, multi_step_loss_iterations=10)
    annealed.optimizer.iterations.assign(10)
    np.testing.assert_array_equal(annealed.multi_step_loss_weights().numpy(), [0, 0, 1])
    plain_loss, plain_grads, _, _ = plain.compute_meta_gradients(batch)
    loss, grads, _, _ = annealed.compute_meta_gradients(batch)
    np.testing.assert_allclose(float(loss), float(plain_loss), rtol=1e-12)
    for got, want in zip(grads, plain_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-14)


def test_multi_step_loss_at_the_start_is_the_mean_of_the_query_losses_after_each_step():
    batch = sinusoid_batch()
    learner = compiled_maml(tiny_model(), inner_learning_rate=0.1, inner_steps=3,
                            multi_step_loss=True)
    loss, grads, _, _ = learner.compute_meta_gradients(batch)

    model = learner.model
    tasks = batch["support_x"].shape[0]
    with tf.GradientTape() as tape:
        expected_loss = 0.0
        for task in range(tasks):
            params, state = adaptation.initial_weights(model)
            for _ in range(3):
                params, state = adaptation.gradient_step(
                    model, learner.task_loss, params, state,
                    batch["support_x"][task], batch["support_y"][task], learning_rates=[0.1] * 4,
                )
                outputs, _ = adaptation.forward(model, params, state, batch["query_x"][task], True)
                expected_loss += learner.task_loss(batch["query_y"][task], outputs) / (3 * tasks)
    expected_grads = tape.gradient(expected_loss, model.trainable_variables)
    np.testing.assert_allclose(float(loss), float(expected_loss), rtol=1e-12)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-14)


def test_multi_step_loss_weights_anneal_from_uniform_to_the_last_step():
    learner = compiled_maml(tiny_model(), inner_steps=4, multi_step_loss=True,
                            multi_step_loss_iterations=100)
    expected = {0: [0.25] * 4, 50: [0.125, 0.125, 0.125, 0.625], 99: None, 100: [0, 0, 0, 1]}
    for iteration, want in expected.items():
        learner.optimizer.iterations.assign(iteration)
        weights = learner.multi_step_loss_weights().numpy()
        np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
        if want is not None:
            np.testing.assert_allclose(weights, want, rtol=1e-6)
    learner.optimizer.iterations.assign(99)
    floor = 0.03 / 4
    np.testing.assert_allclose(learner.multi_step_loss_weights().numpy()[:3], floor, rtol=1e-6)


def test_learned_per_layer_per_step_rates_get_gradients_and_start_as_plain_maml():
    batch = sinusoid_batch()
    plain = compiled_maml(tiny_model(), inner_learning_rate=0.1, inner_steps=2)
    lslr = compiled_maml(tiny_model(), inner_learning_rate=0.1, inner_steps=2,
                         learned_inner_learning_rates="per_layer_per_step")
    rates = lslr.inner_learning_rate_variables
    assert [tuple(r.shape) for r in rates] == [(2,)] * 4
    _, plain_grads, _, _ = plain.compute_meta_gradients(batch)
    _, grads, _, _ = lslr.compute_meta_gradients(batch)
    for got, want in zip(grads[:4], plain_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-14)
    for rate_grad in grads[4:]:
        assert np.all(np.abs(rate_grad.numpy()) > 1e-8), rate_grad
    before = [r.numpy().copy() for r in rates]
    lslr.train_on_batch(batch)
    for old, rate in zip(before, rates):
        assert np.all(old != rate.numpy())


def test_learned_rates_for_evaluation_steps_beyond_training_reuse_the_last_step():
    learner = compiled_maml(tiny_model(), inner_steps=2, eval_inner_steps=4,
                            learned_inner_learning_rates="per_layer_per_step")
    for rate in learner.inner_learning_rate_variables:
        rate.assign([0.1, 0.2])
    rates = learner.inner_learning_rates(training=False)
    expected = [[0.1] * 4, [0.2] * 4, [0.2] * 4, [0.2] * 4]
    assert [[float(r) for r in step] for step in rates] == expected


def bn_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(8),
                             keras.layers.BatchNormalization(), keras.layers.ReLU(),
                             keras.layers.Dense(1)])


def test_each_inner_step_keeps_its_own_batchnorm_statistics():
    learner = compiled_maml(bn_model(), inner_learning_rate=0.1, inner_steps=2, eval_inner_steps=3,
                            per_step_batch_norm_statistics=True)
    assert len(learner.step_statistics_variables) == 2 * 2  # copies 1 and 2 of mean and variance
    assert len(learner.state_variables) == 2 + 4
    initial = [v.numpy().copy() for v in learner.state_variables]
    learner.train_on_batch(sinusoid_batch(dtype=tf.float32))
    copies = [v.numpy() for v in learner.state_variables]
    step0_mean, step1_mean, step2_mean = copies[0], copies[2], copies[4]
    assert not np.allclose(step0_mean, initial[0]) and not np.allclose(step1_mean, initial[2])
    assert not np.allclose(step0_mean, step1_mean)
    np.testing.assert_array_equal(step2_mean, initial[4])  # only evaluation runs a third step


def test_moving_statistics_query_uses_the_last_step_statistics():
    batch = sinusoid_batch(tasks=1, dtype=tf.float32)
    learner = compiled_maml(bn_model(), inner_learning_rate=0.1, inner_steps=2,
                            query_statistics="moving", per_step_batch_norm_statistics=True)
    model_mean, last_step_mean = learner.state_variables[0], learner.state_variables[2]
    baseline = learner.predict_on_batch(batch)
    model_mean.assign(model_mean.numpy() + 3.0)  # step 0's copy: only the inner loop reads it
    np.testing.assert_array_equal(learner.predict_on_batch(batch), baseline)
    last_step_mean.assign(last_step_mean.numpy() + 3.0)
    shifted = learner.predict_on_batch(batch)
    assert np.abs(shifted - baseline).max() > 1e-3
    params, state = learner.adapt(batch["support_x"][0], batch["support_y"][0],
                                  state=adaptation.initial_weights(learner.model)[1])
    outputs, _ = adaptation.forward(learner.model, params, state, batch["query_x"][0], False)
    np.testing.assert_allclose(outputs.numpy(), shifted[0], rtol=1e-6)


def test_saved_and_reloaded_maml_plus_plus_keeps_rates_and_step_statistics(tmp_path):
    learner = tfmeta.MAML(bn_model(), inner_learning_rate=0.05, inner_steps=2, multi_step_loss=True,
                          multi_step_loss_iterations=7, per_step_batch_norm_statistics=True,
                          learned_inner_learning_rates="per_layer_per_step",
                          query_statistics="moving")
    learner.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    batch = sinusoid_batch(tasks=4, dtype=tf.float32)
    learner.train_on_batch(batch)
    path = tmp_path / "maml_plus_plus.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    for name in ("multi_step_loss", "multi_step_loss_iterations", "learned_inner_learning_rates",
                 "per_step_batch_norm_statistics"):
        assert getattr(restored, name) == getattr(learner, name)
    for original, loaded in zip(learner.variables + learner.optimizer.variables,
                                restored.variables + restored.optimizer.variables):
        np.testing.assert_array_equal(original.numpy(), loaded.numpy(), err_msg=original.path)
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))


def test_unknown_learned_rate_kind_is_rejected():
    with pytest.raises(ValueError, match="Expected `learned_inner_learning_rates` to be one of"):
        tfmeta.MAML(tiny_model(), learned_inner_learning_rates="per_layer")


def test_learned_per_step_rates_need_an_inner_step():
    with pytest.raises(ValueError, match="Expected inner_steps >= 1 with learned_inner"):
        tfmeta.MAML(tiny_model(), inner_steps=0, learned_inner_learning_rates="per_layer_per_step")


def test_maml_beats_chance_on_held_out_omniglot_characters(omniglot_5way_1shot):
    keras.utils.set_random_seed(0)
    learner = tfmeta.MAML(tfmeta.models.conv4(num_classes=5, filters=32),
                          inner_learning_rate=0.4, inner_steps=1)
    result = omniglot_5way_1shot(learner, iterations=60, optimizer=keras.optimizers.Adam(0.005))
    assert result["accuracy"] > 0.5, result  # chance: 0.2


def test_tasks_adapted_concurrently_give_the_same_meta_gradients_as_one_at_a_time():
    batch = sinusoid_batch(tasks=4)
    results = []
    for parallel_tasks in (1, 10):
        learner = tfmeta.MAML(tiny_model(), inner_learning_rate=0.1, inner_steps=2,
                              parallel_tasks=parallel_tasks)
        learner.compile(optimizer="sgd", loss="mse")
        results.append(learner.compute_meta_gradients(batch))
    (loss_one, grads_one, _, _), (loss_many, grads_many, _, _) = results
    np.testing.assert_allclose(loss_many, loss_one, rtol=1e-12)
    for one, many in zip(grads_one, grads_many):
        np.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-15)


def test_parallel_tasks_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="Expected `parallel_tasks` to be an integer >= 1"):
        tfmeta.MAML(tiny_model(), parallel_tasks=0)


def float64_bn_dropout_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((1,), dtype="float64"),
            keras.layers.Dense(16, dtype="float64"),
            keras.layers.BatchNormalization(dtype="float64"),
            keras.layers.ReLU(dtype="float64"),
            keras.layers.Dropout(0.1, dtype="float64"),
            keras.layers.Dense(1, dtype="float64"),
        ]
    )


RECOMPUTED_LEARNERS = {
    "maml": lambda model, **kw: tfmeta.MAML(model, **kw),
    "lslr_multi_step": lambda model, **kw: tfmeta.MAML(
        model, learned_inner_learning_rates="per_layer_per_step", multi_step_loss=True, **kw
    ),
    "metasgd": lambda model, **kw: tfmeta.MetaSGD(model, **kw),
    "anil": lambda model, **kw: tfmeta.ANIL(model, **kw),
}


@pytest.mark.parametrize("name", sorted(RECOMPUTED_LEARNERS))
@pytest.mark.parametrize("model", [tiny_model, float64_bn_dropout_model],
                         ids=["mlp", "batchnorm_dropout"])
def test_recomputed_inner_steps_give_the_same_second_order_meta_gradients(name, model):
    batch = sinusoid_batch()
    results = []
    for recompute in (False, True):
        learner = RECOMPUTED_LEARNERS[name](
            model(), inner_learning_rate=0.1, inner_steps=3, recompute_inner_steps=recompute
        )
        learner.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        results.append(learner.compute_meta_gradients(batch))
    (loss, grads, _, state), (recomputed_loss, recomputed_grads, _, recomputed_state) = results
    np.testing.assert_allclose(recomputed_loss, loss, rtol=1e-12)
    for plain, recomputed in zip(grads, recomputed_grads):
        np.testing.assert_allclose(recomputed, plain, rtol=1e-10, atol=1e-14)
    for plain, recomputed in zip(state, recomputed_state):
        np.testing.assert_allclose(recomputed, plain, rtol=1e-12)


def test_recomputed_inner_steps_train_like_stored_ones_in_a_compiled_step(monkeypatch):
    checkpointed_steps = []
    recomputed_step = adaptation._recomputed_step
    monkeypatch.setattr(adaptation, "_recomputed_step",
                        lambda *args: checkpointed_steps.append(1) or recomputed_step(*args))
    batch = sinusoid_batch()
    weights = []
    for recompute in (False, True):
        learner = compiled_maml(float64_bn_dropout_model(), inner_learning_rate=0.1,
                                inner_steps=2, recompute_inner_steps=recompute)
        for _ in range(3):
            learner.train_on_batch(batch)
        weights.append(learner.get_weights())
        assert bool(checkpointed_steps) == recompute  # traced once: 2 steps
    assert len(checkpointed_steps) == 2
    for plain, recomputed in zip(*weights):
        np.testing.assert_allclose(recomputed, plain, rtol=1e-10, atol=1e-14)
