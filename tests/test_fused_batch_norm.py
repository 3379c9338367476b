"""The fused BatchNorm fast path equals Keras's BatchNorm, and is used only where it is exact."""

import collections
import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import adaptation, query_statistics
from tfmeta.fused_batch_norm import fused_batch_norm, fused_query_pass

WAYS, SHOTS, QUERIES = 3, 1, 4


def small_conv4(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return tfmeta.models.conv4((14, 14, 1), num_classes=WAYS, filters=8, **kwargs)


def episodes(tasks=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(WAYS, dtype=np.int32), (tasks, 1))
    return {
        "support_x": tf.constant(rng.random((tasks, WAYS * SHOTS, 14, 14, 1), np.float32)),
        "support_y": tf.constant(np.repeat(labels, SHOTS, axis=1)),
        "query_x": tf.constant(rng.random((tasks, WAYS * QUERIES, 14, 14, 1), np.float32)),
        "query_y": tf.constant(np.repeat(labels, QUERIES, axis=1)),
    }


def compiled(learner):
    learner.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return learner


LEARNERS = {
    "maml": lambda model: tfmeta.MAML(model, inner_learning_rate=0.4),
    "fomaml": lambda model: tfmeta.MAML(model, inner_learning_rate=0.4, first_order=True),
    "fomaml_3_steps": lambda model: tfmeta.MAML(
        model, inner_learning_rate=0.4, inner_steps=3, first_order=True
    ),
    "metasgd": lambda model: tfmeta.MetaSGD(model, inner_learning_rate=0.4),
    # Second order, but the inner loop differentiates the head only: BatchNorm before it
    # is differentiated once.
    "anil": lambda model: tfmeta.ANIL(model, inner_learning_rate=0.4),
    "anil_with_batch_norm_in_head": lambda model: tfmeta.ANIL(
        model, inner_learning_rate=0.4, head_layers=["block3_conv", "head"]),
    "reptile": lambda model: tfmeta.Reptile(model, inner_learning_rate=0.4, inner_steps=2),
    "protonet": lambda model: tfmeta.ProtoNet(
        tfmeta.models.conv4((14, 14, 1), num_classes=None, filters=8)
    ),
}
# Learners whose meta-training differentiates BatchNorm at most once (first order, or
# second order through a head without BatchNorm), and those whose second order runs
# through it.
DIFFERENTIATED_ONCE = ["fomaml", "fomaml_3_steps", "reptile", "protonet", "anil"]
DIFFERENTIATED_TWICE = ["maml", "metasgd", "anil_with_batch_norm_in_head"]


# Float32 round-off grows through inner steps at learning rate 0.4; a BatchNorm
# that differed in substance (e.g. the unbiased batch variance) is off by >1e-3.
LEARNER_TOLERANCE = 1e-4


def assert_close(actual, expected, tolerance=1e-5, name=""):
    """Equal up to float32 round-off: the error norm relative to `expected`'s norm.

    Lists of tensors are compared as one vector: some gradients are zero up to
    round-off (a convolution bias before BatchNorm) and have no scale of their own.
    """
    if isinstance(expected, (list, tuple)):
        actual = np.concatenate([np.ravel(a) for a in actual])
        expected = np.concatenate([np.ravel(e) for e in expected])
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    error = np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-12)
    assert error < tolerance, f"{name}: relative error {error:.2e}"


def kernel_op_counts(fn, *args):
    """How many ops of each BatchNorm kernel type `fn` traced as a `tf.function` holds,
    map_fn bodies included."""
    graph_def = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    ops = [node.op for node in graph_def.node]
    for function in graph_def.library.function:
        ops += [node.op for node in function.node_def]
    return dict(collections.Counter(op for op in ops if "BatchNorm" in op))


def kernel_ops(fn, *args):
    """The BatchNorm kernel op types of `fn` traced as a `tf.function`."""
    return set(kernel_op_counts(fn, *args))


def test_forward_state_and_gradients_equal_keras_batch_norm():
    model = small_conv4()
    params, state = adaptation.initial_weights(model)
    inputs = tf.random.stateless_uniform((6, 14, 14, 1), seed=(1, 2))

    def run():
        with tf.GradientTape() as tape:
            tape.watch(params)
            outputs, new_state = adaptation.forward(model, params, state, inputs, training=True)
            loss = tf.reduce_sum(tf.sin(outputs))
        return outputs, new_state, tape.gradient(loss, params)

    keras_outputs, keras_state, keras_grads = run()
    with fused_batch_norm(model):
        fused_outputs, fused_state, fused_grads = run()
        assert kernel_ops(lambda x: adaptation.forward(model, params, state, x, True)[0], inputs) \
            == {"FusedBatchNormV3"}
    assert_close(fused_outputs, keras_outputs)
    assert_close(fused_state, keras_state)
    assert_close(fused_grads, keras_grads)


@pytest.mark.parametrize("name", DIFFERENTIATED_ONCE)
def test_meta_gradients_differentiating_batch_norm_once_equal_the_unfused_path(name, monkeypatch):
    learner = compiled(LEARNERS[name](small_conv4()))
    batch = episodes()
    assert kernel_ops(learner.train_step, batch) == {"FusedBatchNormV3", "FusedBatchNormGradV3"}
    fused_loss, fused_grads, fused_predictions, fused_state = learner.compute_meta_gradients(batch)
    # The unfused path: the exact batch statistics second-order training uses.
    monkeypatch.setattr(type(learner), "_fused_batch_norm_is_exact", lambda *_: False)
    monkeypatch.setattr(type(learner), "_fused_query_pass", lambda *_: False, raising=False)
    assert kernel_ops(learner.train_step, batch) == set()
    loss, grads, predictions, state = learner.compute_meta_gradients(batch)
    assert_close(fused_loss, loss, LEARNER_TOLERANCE)
    assert_close(fused_predictions, predictions, LEARNER_TOLERANCE)
    assert_close(fused_grads, grads, LEARNER_TOLERANCE)
    assert_close(fused_state, state, LEARNER_TOLERANCE)


@pytest.mark.parametrize("name", DIFFERENTIATED_TWICE)
def test_second_order_evaluation_is_fused(name):
    # Evaluation differentiates BatchNorm at most once (the inner loop), so it is fused.
    learner = compiled(LEARNERS[name](small_conv4()))
    assert "FusedBatchNormV3" in kernel_ops(learner.test_step, episodes())


def test_second_order_meta_training_with_support_statistics_keeps_the_exact_batch_norm():
    learner = compiled(LEARNERS["maml"](small_conv4()))
    learner.optimizer.build(learner.trainable_variables)
    assert learner.query_statistics == "support"
    assert kernel_ops(learner.train_step, episodes()) == set()


@pytest.mark.parametrize("mode", ["transductive", "moving"])
@pytest.mark.parametrize("name", DIFFERENTIATED_TWICE)
def test_second_order_meta_training_fuses_the_query_pass_only_and_equals_the_exact_path(
    name, mode, monkeypatch
):
    # The meta-gradient differentiates the query pass once: the kernel is exact there,
    # while the support passes of the inner loop keep the exact second derivatives.
    learner = compiled(LEARNERS[name](small_conv4()))
    learner.query_statistics = mode
    batch = episodes()
    learner.optimizer.build(learner.trainable_variables)
    one_per_layer = len([layer for layer in learner.model.layers
                         if isinstance(layer, keras.layers.BatchNormalization)])
    assert kernel_op_counts(learner.train_step, batch) == {
        "FusedBatchNormV3": one_per_layer, "FusedBatchNormGradV3": one_per_layer}
    fused_loss, fused_grads, fused_predictions, fused_state = learner.compute_meta_gradients(batch)
    monkeypatch.setattr(
        type(learner), "_fused_query_pass", lambda *_, **__: False)
    assert kernel_ops(learner.train_step, batch) == set()
    loss, grads, predictions, state = learner.compute_meta_gradients(batch)
    assert_close(fused_loss, loss, LEARNER_TOLERANCE)
    assert_close(fused_predictions, predictions, LEARNER_TOLERANCE)
    assert_close(fused_grads, grads, LEARNER_TOLERANCE)
    assert_close(fused_state, state, LEARNER_TOLERANCE)


def test_the_query_pass_kernel_restores_the_exact_computation_on_exit():
    model = small_conv4()
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    with query_statistics.batch_statistics(model):
        exact_calls = [vars(layer)["call"] for layer in layers]
        with fused_query_pass(model):
            assert all(vars(layer)["call"] is not exact
                       for layer, exact in zip(layers, exact_calls))
        assert [vars(layer)["call"] for layer in layers] == exact_calls
    assert not any("call" in vars(layer) for layer in layers)


@pytest.mark.parametrize("name", [
    "maml", *(pytest.param(name, marks=pytest.mark.slow) for name in ("anil", "protonet"))])
def test_evaluation_and_prediction_equal_the_keras_batch_norm_path(name, monkeypatch):
    learner = compiled(LEARNERS[name](small_conv4()))
    batch = episodes()
    fused_logs = learner.test_on_batch(batch, return_dict=True)
    fused_predictions = learner.predict_on_batch(batch)
    plain = compiled(LEARNERS[name](small_conv4()))
    plain.set_weights(learner.get_weights())
    monkeypatch.setattr(type(plain), "batch_norm_kernel", lambda *_, **__: contextlib.nullcontext())
    plain_logs = plain.test_on_batch(batch, return_dict=True)
    assert_close(fused_predictions, plain.predict_on_batch(batch), LEARNER_TOLERANCE)
    for key, value in plain_logs.items():
        assert_close(fused_logs[key], value, LEARNER_TOLERANCE, name=key)


class ScaledBatchNorm(keras.layers.BatchNormalization):
    """A subclass may change the computation: it must keep its own `call`."""

    def call(self, inputs, training=None, mask=None):
        return 2.0 * super().call(inputs, training=training, mask=mask)


@pytest.mark.parametrize(
    "layer, dtype",
    [
        (lambda: ScaledBatchNorm(), "float32"),
        (lambda: keras.layers.BatchNormalization(renorm=True), "float32"),
        (lambda: keras.layers.BatchNormalization(epsilon=1e-6), "float32"),
        (lambda: keras.layers.BatchNormalization(dtype="float64"), "float64"),
        (lambda: keras.layers.BatchNormalization(axis=1), "float32"),
    ],
    ids=["subclass", "renorm", "small_epsilon", "float64", "channels_first"],
)
def test_configurations_the_kernel_does_not_cover_keep_keras_batch_norm(layer, dtype):
    model = keras.Sequential(
        [keras.Input((6, 6, 4), dtype=dtype), layer(), keras.layers.Flatten()]
    )
    params, state = adaptation.initial_weights(model)
    inputs = tf.random.stateless_uniform((5, 6, 6, 4), seed=(3, 4), dtype=dtype)
    expected, _ = adaptation.forward(model, params, state, inputs, training=True)
    with fused_batch_norm(model):
        assert kernel_ops(lambda x: adaptation.forward(model, params, state, x, True)[0], inputs) \
            == set()
        outputs, _ = adaptation.forward(model, params, state, inputs, training=True)
    np.testing.assert_array_equal(outputs, expected)


def test_the_switch_is_undone_on_exit_even_after_an_error():
    model = small_conv4()
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    with pytest.raises(RuntimeError, match="inside"):
        with fused_batch_norm(model):
            assert all("call" in vars(layer) for layer in layers)
            raise RuntimeError("inside")
    assert not any("call" in vars(layer) for layer in layers)
