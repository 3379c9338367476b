"""TaskNormalization (TaskNorm-I): the blended moments it computes, queries independent of each
other in support mode, exact second-order meta-gradients, the export path and saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from query_statistics_testing import (CROSS_ENTROPY, maml, meta_gradients_and_finite_differences,
                                      pooled_batch_norm, predict)
from tfmeta import query_statistics
from tfmeta.layers import TaskNormalization


def tn_conv(dtype="float32", seed=0):
    """Conv 3x3 -> TaskNormalization -> ReLU -> mean pool -> Dense over 5x5 images, with
    blend weights away from their initial values (so a wrong blend shows)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((5, 5, 1), dtype=dtype), keras.layers.Conv2D(3, 3, dtype=dtype),
        TaskNormalization(dtype=dtype), keras.layers.ReLU(dtype=dtype),
        keras.layers.GlobalAveragePooling2D(dtype=dtype), keras.layers.Dense(3, dtype=dtype)])
    norm = model.layers[1]
    norm.blend_scale.assign([0.3, -0.2, 0.1])
    norm.blend_offset.assign([-0.5, 1.0, 0.2])
    return model


def image_episode(dtype=np.float32, queries=7, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "support_x": rng.standard_normal((6, 5, 5, 1)).astype(dtype),
        "support_y": np.array([0, 1, 2, 0, 1, 2], np.int32),
        "query_x": rng.standard_normal((queries, 5, 5, 1)).astype(dtype) + 0.5,
        "query_y": rng.integers(0, 3, queries).astype(np.int32),
    }


def blended(features, context, alpha, gamma, beta, epsilon):
    """TaskNorm-I by hand: the context examples' moments pooled with each example's own."""
    return pooled_batch_norm(features, context.mean(axis=(0, 1, 2)), context.var(axis=(0, 1, 2)),
                             alpha, gamma, beta, epsilon)


def test_training_call_blends_the_batch_moments_with_each_examples_own_by_the_learned_alpha():
    layer = TaskNormalization(dtype="float64")
    x = np.random.default_rng(0).standard_normal((4, 3, 3, 2)) * [1.0, 3.0] + [0.5, -1.0]
    layer.build(x.shape)
    layer.blend_scale.assign([0.5, -0.25])
    layer.blend_offset.assign([-1.0, 0.5])
    alpha = 1 / (1 + np.exp(-(np.array([0.5, -0.25]) * 4 + np.array([-1.0, 0.5]))))
    outputs = layer(x, training=True).numpy()
    np.testing.assert_allclose(outputs, blended(x, x, alpha, 1.0, 0.0, layer.epsilon),
                               rtol=1e-10)
    assert float(layer.context_size.numpy()) == 4.0
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.01 * x.mean(axis=(0, 1, 2)),
                               rtol=1e-10)


def test_inference_call_blends_the_moving_moments_as_a_context_of_context_size_examples():
    layer = TaskNormalization(dtype="float64")
    x = np.random.default_rng(1).standard_normal((3, 4, 4, 2))
    layer.build(x.shape)
    layer.moving_mean.assign([0.2, -0.3])
    layer.moving_variance.assign([2.0, 0.5])
    layer.context_size.assign(5.0)
    alpha = 1 / (1 + np.exp(-1.0))  # blend_scale 0, blend_offset 1 initially
    expected = pooled_batch_norm(x, np.array([0.2, -0.3]), np.array([2.0, 0.5]), alpha, 1.0, 0.0,
                                 layer.epsilon)
    np.testing.assert_allclose(layer(x, training=False).numpy(), expected, rtol=1e-10)


def test_support_mode_normalises_every_example_with_the_support_set_as_context():
    learner = maml(tn_conv("float64"))
    task = image_episode(np.float64)
    params, _ = learner.adapt(task["support_x"], task["support_y"])
    kernel, bias, gamma, beta, scale, offset, head_kernel, head_bias = (p.numpy() for p in params)
    features = tf.nn.conv2d(np.concatenate([task["support_x"], task["query_x"]]), kernel, 1,
                            "VALID").numpy() + bias
    alpha = 1 / (1 + np.exp(-(scale * 6 + offset)))
    normalised = blended(features, features[:6], alpha, gamma, beta,
                         learner.model.layers[1].epsilon)
    expected = np.maximum(normalised, 0.0).mean(axis=(1, 2))[6:] @ head_kernel + head_bias
    np.testing.assert_allclose(predict(learner, task), expected, rtol=1e-10)


@pytest.mark.parametrize("name", ["maml", "protonet"])
def test_support_mode_predicts_each_query_the_same_alone_or_in_any_batch(name):
    learner = (maml(tn_conv()) if name == "maml"
               else tfmeta.ProtoNet(tn_conv(), query_statistics="support"))
    if not learner.compiled:
        learner.compile(optimizer="sgd", loss=CROSS_ENTROPY)
    task = image_episode()
    together = predict(learner, task)
    alone = np.concatenate([predict(learner, {**task, "query_x": task["query_x"][i:i + 1]})
                            for i in range(len(task["query_x"]))])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["support", "transductive"])
def test_second_order_meta_gradient_through_task_normalization_matches_finite_differences(mode):
    learner = maml(tn_conv("float64"), query_statistics=mode)
    variables, grads, numeric = meta_gradients_and_finite_differences(
        learner, image_episode(np.float64))
    for variable, grad, expected in zip(variables, grads, numeric):
        error = np.linalg.norm(grad.numpy() - expected)
        assert error < 1e-5 * np.linalg.norm(expected) + 1e-8, (variable.path, error)
    blend = {v.path: g for v, g in zip(variables, grads) if "blend" in v.path}
    assert len(blend) == 2 and all(np.abs(g.numpy()).max() > 1e-6 for g in blend.values())


def test_support_statistics_state_predicts_like_support_mode_in_inference_mode():
    learner = maml(tn_conv("float64"))
    task = image_episode(np.float64)
    params, state = learner.adapt(task["support_x"], task["support_y"])
    baked = query_statistics.support_statistics_state(
        learner.model, params, state, tf.constant(task["support_x"]))
    outputs, _ = learner.model.stateless_call(params, baked, task["query_x"], training=False)
    np.testing.assert_allclose(outputs.numpy(), predict(learner, task), rtol=1e-10)


def test_saved_and_reloaded_model_keeps_its_blend_and_predictions(tmp_path):
    learner = maml(tn_conv())
    task = image_episode()
    path = str(tmp_path / "maml.keras")
    learner.save(path)
    reloaded = keras.models.load_model(path)
    norm = reloaded.model.layers[1]
    assert isinstance(norm, TaskNormalization)
    np.testing.assert_allclose(norm.blend_offset.numpy(), [-0.5, 1.0, 0.2])
    np.testing.assert_allclose(predict(reloaded, task), predict(learner, task), rtol=1e-6)


def test_inputs_without_spatial_axes_are_refused():
    with pytest.raises(ValueError, match=r"spatial axes .*input_shape=\(None, 4\)"):
        keras.Sequential([keras.Input((4,)), TaskNormalization()])


def test_renorm_is_refused():
    with pytest.raises(ValueError, match="without renorm"):
        TaskNormalization(renorm=True)


def test_conv4_builds_task_normalization_on_request_and_refuses_unknown_names():
    model = tfmeta.models.conv4(filters=4, normalization="task")
    assert sum(isinstance(layer, TaskNormalization) for layer in model.layers) == 4
    with pytest.raises(ValueError, match=r"normalization='group'"):
        tfmeta.models.conv4(filters=4, normalization="group")


def test_the_command_builds_conv4_with_task_normalization_on_request():
    from tfmeta.cli import learners, options
    run = options.RunOptions(algorithm="maml", dataset="omniglot", ways=5, filters=4,
                             normalization="task", query_statistics="support")
    learner = learners.build(run, (28, 28, 1), classification=True)
    kinds = {type(layer).__name__ for layer in learner.model.layers}
    assert "TaskNormalization" in kinds and "BatchNormalization" not in kinds
