"""Query statistics: support-normalised queries are independent of each other; Dropout is off
whenever a learner evaluates; the modes compute what they say, with exact meta-gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import finite_differences
import tfmeta
from query_statistics_testing import CROSS_ENTROPY, maml, pooled_batch_norm, predict
from tfmeta import query_statistics
from tfmeta.data import SinusoidTasks


def bn_mlp(dtype="float32", seed=0, dropout=None, norm="batch"):
    """Dense -> normalisation -> ReLU -> [Dropout] -> Dense, over 6 features, 3 outputs."""
    keras.utils.set_random_seed(seed)
    norms = {
        "batch": lambda: keras.layers.BatchNormalization(dtype=dtype),
        "group": lambda: keras.layers.GroupNormalization(groups=2, dtype=dtype),
        "layer": lambda: keras.layers.LayerNormalization(dtype=dtype),
    }
    layers = [keras.Input((6,), dtype=dtype), keras.layers.Dense(8, dtype=dtype), norms[norm](),
              keras.layers.ReLU(dtype=dtype)]
    if dropout is not None:
        layers.append(keras.layers.Dropout(dropout, dtype=dtype))
    layers.append(keras.layers.Dense(3, dtype=dtype))
    return keras.Sequential(layers)


def bn_conv(dtype="float32", seed=0):
    """Conv 3x3 -> BatchNorm -> ReLU -> mean pool -> Dense over 5x5 images (spatial moments)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((5, 5, 1), dtype=dtype), keras.layers.Conv2D(3, 3, dtype=dtype),
        keras.layers.BatchNormalization(dtype=dtype), keras.layers.ReLU(dtype=dtype),
        keras.layers.GlobalAveragePooling2D(dtype=dtype), keras.layers.Dense(3, dtype=dtype)])


def image_episode(dtype=np.float32, queries=7, seed=0):
    task = episode(dtype, queries, seed)
    rng = np.random.default_rng(seed)
    task["support_x"] = rng.standard_normal((6, 5, 5, 1)).astype(dtype)
    task["query_x"] = rng.standard_normal((queries, 5, 5, 1)).astype(dtype) + 0.5
    return task


def episode(dtype=np.float32, queries=7, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "support_x": rng.standard_normal((6, 6)).astype(dtype),
        "support_y": np.array([0, 1, 2, 0, 1, 2], np.int32),
        "query_x": rng.standard_normal((queries, 6)).astype(dtype) + 0.5,
        "query_y": rng.integers(0, 3, queries).astype(np.int32),
    }


def learners_in_support_mode():
    protonet = tfmeta.ProtoNet(bn_mlp(), query_statistics="support")
    fine_tune = tfmeta.FineTune(bn_mlp(), ways=3, eval_inner_steps=3,
                                query_statistics="support")
    reptile = tfmeta.Reptile(bn_mlp(), inner_steps=2)
    learners = {"maml": maml(bn_mlp()), "protonet": protonet, "fine_tune": fine_tune,
                "maml_support_instance": maml(bn_conv(), query_statistics="support_instance"),
                "protonet_support_instance": tfmeta.ProtoNet(
                    bn_conv(), query_statistics="support_instance"),
                "reptile": reptile, "anil": tfmeta.ANIL(bn_mlp(), inner_learning_rate=0.3)}
    for learner in learners.values():
        if not learner.compiled:
            learner.compile(optimizer="sgd", loss=CROSS_ENTROPY)
    return learners


@pytest.mark.parametrize("name", ["maml", "protonet", "fine_tune", "reptile", "anil",
                                  "maml_support_instance", "protonet_support_instance"])
def test_support_mode_predicts_each_query_the_same_alone_or_in_any_batch(name):
    learner = learners_in_support_mode()[name]
    task = image_episode() if name.endswith("support_instance") else episode()
    together = predict(learner, task)
    alone = np.concatenate([predict(learner, {**task, "query_x": task["query_x"][i:i + 1]})
                            for i in range(len(task["query_x"]))])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)
    reordered = predict(learner, {**task, "query_x": task["query_x"][::-1]})
    np.testing.assert_allclose(reordered[::-1], together, rtol=1e-5, atol=1e-6)


def test_transductive_prediction_depends_on_the_query_batch():
    learner = maml(bn_mlp(), query_statistics="transductive")
    task = episode()
    together = predict(learner, task)
    alone = predict(learner, {**task, "query_x": task["query_x"][:2]})
    assert np.abs(alone - together[:2]).max() > 1e-3
    assert query_statistics.depends_on_query_batch(learner.model, "transductive")
    assert not query_statistics.depends_on_query_batch(learner.model, "support")
    assert not query_statistics.depends_on_query_batch(bn_mlp(norm="layer"), "transductive")


def test_support_mode_normalises_queries_with_the_adapted_support_statistics():
    learner = maml(bn_mlp("float64"))
    task = episode(np.float64)
    params, _ = learner.adapt(task["support_x"], task["support_y"])
    kernel, bias, gamma, beta, head_kernel, head_bias = (p.numpy() for p in params)
    hidden = task["support_x"] @ kernel + bias
    mean, variance = hidden.mean(axis=0), hidden.var(axis=0)
    queries = task["query_x"] @ kernel + bias
    epsilon = learner.model.layers[1].epsilon
    normalised = (queries - mean) / np.sqrt(variance + epsilon) * gamma + beta
    expected = np.maximum(normalised, 0.0) @ head_kernel + head_bias
    np.testing.assert_allclose(predict(learner, task), expected, rtol=1e-10)


def test_support_instance_mode_pools_the_support_moments_with_the_examples_own():
    learner = maml(bn_conv("float64"), query_statistics="support_instance")
    task = image_episode(np.float64)
    params, _ = learner.adapt(task["support_x"], task["support_y"])
    kernel, bias, gamma, beta, head_kernel, head_bias = (p.numpy() for p in params)
    features = tf.nn.conv2d(np.concatenate([task["support_x"], task["query_x"]]), kernel, 1,
                            "VALID").numpy() + bias
    support = features[:6]
    normalised = pooled_batch_norm(features, support.mean(axis=(0, 1, 2)),
                                   support.var(axis=(0, 1, 2)), 6 / 7, gamma, beta,
                                   learner.model.layers[1].epsilon)
    pooled = np.maximum(normalised, 0.0).mean(axis=(1, 2))
    expected = pooled[6:] @ head_kernel + head_bias
    np.testing.assert_allclose(predict(learner, task), expected, rtol=1e-10)


def test_support_statistics_state_predicts_like_support_mode_in_inference_mode():
    learner = maml(bn_mlp("float64"))
    task = episode(np.float64)
    params, state = learner.adapt(task["support_x"], task["support_y"])
    baked = query_statistics.support_statistics_state(
        learner.model, params, state, tf.constant(task["support_x"]))
    outputs, _ = learner.model.stateless_call(params, baked, task["query_x"], training=False)
    np.testing.assert_allclose(outputs.numpy(), predict(learner, task), rtol=1e-10)


@pytest.mark.parametrize("mode", query_statistics.MODES)
def test_second_order_meta_gradient_through_batch_norm_matches_finite_differences(mode):
    # Keras's BatchNorm (tf.nn.moments) gets this wrong by about 3%: see batch_statistics.
    model, task = ((bn_conv("float64"), image_episode(np.float64)) if mode == "support_instance"
                   else (bn_mlp("float64"), episode(np.float64)))
    learner = maml(model, query_statistics=mode)
    batch = {k: tf.constant(np.stack([v, v[::-1].copy()])) for k, v in task.items()}
    _, grads, _, _ = learner.compute_meta_gradients(batch)
    variables = learner.model.trainable_variables
    traced = tf.function(lambda: learner.compute_meta_gradients(batch)[0])  # traced once
    numeric = finite_differences.gradients(lambda: float(traced()), variables)
    for variable, grad, expected in zip(variables, grads, numeric):
        # (The bias before BatchNorm has no effect: both are ~0 there, up to round-off.)
        error = np.linalg.norm(grad.numpy() - expected)
        assert error < 1e-5 * np.linalg.norm(expected) + 1e-8, (variable.path, error)


def without_dropout(model):
    """The same network and weights with its Dropout layer left out."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.Dropout)]
    twin = keras.Sequential([keras.Input(model.inputs[0].shape[1:])] + [
        type(layer).from_config(layer.get_config()) for layer in layers])
    for source, target in zip(layers, twin.layers):
        target.set_weights(source.get_weights())
    return twin


@pytest.mark.parametrize("mode", query_statistics.MODES)
def test_dropout_is_off_when_evaluating_in_every_mode(mode):
    model = bn_mlp(dropout=0.5)
    learner, twin = maml(model, query_statistics=mode), maml(without_dropout(model),
                                                             query_statistics=mode)
    batch = {k: v[None] for k, v in episode().items()}
    np.testing.assert_allclose(learner.predict_on_batch(batch), twin.predict_on_batch(batch),
                               rtol=1e-5, atol=1e-6)
    logs = learner.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
    twin_logs = twin.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(twin_logs["loss"], rel=1e-5)


@pytest.mark.parametrize("norm", ["batch", "group", "layer"])
def test_saved_and_reloaded_learner_with_dropout_predicts_identically(tmp_path, norm):
    learner = maml(bn_mlp(dropout=0.3, norm=norm))
    batch = {k: v[None] for k, v in episode().items()}
    learner.train_on_batch(batch)
    learner.save(tmp_path / "learner.keras")
    restored = keras.saving.load_model(tmp_path / "learner.keras")
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))


@pytest.mark.slow  # 800 meta-updates
def test_meta_training_in_support_mode_lowers_the_held_out_query_loss():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(40, activation="relu"),
                            keras.layers.Dense(40), keras.layers.BatchNormalization(),
                            keras.layers.ReLU(), keras.layers.Dense(1)])
    learner = tfmeta.MAML(net, inner_learning_rate=0.01)
    learner.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    held_out = SinusoidTasks().episodes(10, 10, meta_batch_size=25, num_episodes=100, seed=1)
    initial = learner.evaluate(held_out, return_dict=True, verbose=0)["loss"]
    # 800 updates: after 400 the held-out loss had halved on an Intel AVX-512 machine but was
    # at 0.6 of its start on an AMD AVX2 one (the kernels' rounding changes the trajectory).
    learner.fit(SinusoidTasks().episodes(10, 10, meta_batch_size=10, seed=0),
                steps_per_epoch=800, verbose=0)
    assert learner.evaluate(held_out, return_dict=True, verbose=0)["loss"] < 0.5 * initial


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match=r"Expected `query_statistics` to be one of \['support'"):
        tfmeta.MAML(bn_mlp(), query_statistics="batch")


def test_support_mode_refuses_batch_norm_it_cannot_reproduce():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8),
                            keras.layers.BatchNormalization(renorm=True), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="Expected Keras's own BatchNormalization computation"):
        predict(maml(net), episode())


@pytest.mark.parametrize("flag, mode", [(True, "transductive"), (False, "moving")])
def test_configs_saved_with_the_transductive_flag_still_load(flag, mode):
    config = maml(bn_mlp()).get_config()
    del config["query_statistics"]
    config["transductive"] = flag
    assert tfmeta.MAML.from_config(config).query_statistics == mode
