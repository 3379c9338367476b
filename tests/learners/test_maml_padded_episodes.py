"""MAML and its family on padded variable-way, variable-shot episodes: the unpadded results with
the head restricted to the episode's ways, one trace, a head that starts each task at zero."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import finite_differences
import tfmeta
from tfmeta import query_statistics

from padded_episodes_testing import CONFIG, compiled, padded_batch, toy_source, unpadded

N = CONFIG.max_ways  # the head's outputs: the episodes' largest way count


def classifier(outputs=N, seed=0, size=6, dtype="float32"):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((size, size, 1), dtype=dtype),
        keras.layers.Conv2D(3, 3, dtype=dtype),
        keras.layers.BatchNormalization(dtype=dtype),
        keras.layers.Activation("tanh", dtype=dtype),
        keras.layers.Flatten(dtype=dtype),
        keras.layers.Dense(outputs, dtype=dtype),
    ])


def restricted(model, ways):
    """A copy of `model` whose head keeps only the outputs of classes `0..ways-1`."""
    copy = classifier(ways, dtype=model.dtype_policy.name)
    for source, target in zip(model.layers, copy.layers):
        weights = source.get_weights()
        if source is model.layers[-1]:
            weights = [w[..., :ways] for w in weights]
        target.set_weights(weights)
    return copy


def task_of(batch, task):
    return {key: value[task : task + 1] for key, value in batch.items()}


def assert_equals_restricted(padded, plain, batch, ways, rtol):
    """Predictions, loss, meta-gradients and new state of a one-task padded batch equal those
    of the unpadded episode under the restricted head (absent classes: -1e30, zero gradient)."""
    episode = unpadded(batch, 0)
    query = batch["query_mask"][0].numpy()
    scores = padded.query_scores(padded.checked_episodes(batch))
    expected = plain.query_scores(plain.checked_episodes(episode))
    predictions = scores["predictions"][0].numpy()
    np.testing.assert_allclose(predictions[query][:, :ways], expected["predictions"][0],
                               rtol=rtol, atol=rtol)
    assert np.all(predictions[query][:, ways:] == -1e30)
    assert not predictions[~query].any()  # padded queries: zeros
    for key in ("loss", "pre_adaptation_loss"):
        np.testing.assert_allclose(scores[key], expected[key], rtol=rtol)
    loss, grads, _, state = padded.compute_meta_gradients(batch)
    loss_plain, grads_plain, _, state_plain = plain.compute_meta_gradients(episode)
    np.testing.assert_allclose(loss, loss_plain, rtol=rtol)
    for variable, grad, grad_plain in zip(padded.meta_variables, grads, grads_plain):
        grad = grad.numpy()
        if grad.shape != grad_plain.shape:  # the head's weights (and learned rates)
            assert not grad[..., ways:].any(), variable.path  # absent classes learn nothing
            grad = grad[..., :ways]
        np.testing.assert_allclose(grad, grad_plain, rtol=10 * rtol, atol=rtol,
                                   err_msg=variable.path)
    for value, value_plain in zip(state, state_plain):  # BatchNorm statistics of real rows only
        np.testing.assert_allclose(value, value_plain, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("mode", query_statistics.MODES)
def test_maml_on_a_padded_episode_equals_the_unpadded_episode_with_its_head(mode):
    """Tolerance: float32, rtol 1e-5 (1e-4 for meta-gradients)."""
    batch = task_of(padded_batch(), 0)
    ways = int(batch["ways"][0])
    assert ways < N
    model = classifier()
    kwargs = dict(inner_learning_rate=0.3, inner_steps=2, query_statistics=mode)
    padded = compiled(tfmeta.MAML(model, **kwargs))
    plain = compiled(tfmeta.MAML(restricted(model, ways), **kwargs))
    assert_equals_restricted(padded, plain, batch, ways, rtol=1e-5)


@pytest.mark.parametrize("learner, kwargs", [
    (tfmeta.MetaSGD, {}),
    (tfmeta.ANIL, {"head_initialization": "zeros"}),
    (tfmeta.MAML, {"multi_step_loss": True, "per_step_batch_norm_statistics": True,
                   "first_order": True}),
    (tfmeta.Reptile, {}),
    (tfmeta.Reptile, {"inner_optimizer": "adam"}),
], ids=["meta_sgd", "anil_zero_head", "maml_plus_plus", "reptile", "reptile_adam"])
def test_maml_family_on_a_padded_episode_equals_the_unpadded_episode(learner, kwargs):
    batch = task_of(padded_batch(), 3)
    ways = int(batch["ways"][0])
    assert ways < N
    model = classifier()
    kwargs = dict(inner_learning_rate=0.3, inner_steps=2, **kwargs)
    padded = compiled(learner(model, **kwargs))
    plain = compiled(learner(restricted(model, ways), **kwargs))
    assert_equals_restricted(padded, plain, batch, ways, rtol=1e-5)


def test_metrics_count_only_real_queries():
    batch = padded_batch(seed=1)
    learner = compiled(tfmeta.MAML(classifier(), inner_learning_rate=0.3))
    logs = learner.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
    predictions = learner.query_scores(learner.checked_episodes(batch))["predictions"].numpy()
    mask = batch["query_mask"].numpy()
    correct = np.argmax(predictions, -1) == batch["query_y"].numpy()
    np.testing.assert_allclose(logs["accuracy"], correct[mask].mean(), rtol=1e-6)


class CountingMAML(tfmeta.MAML):
    traces = 0

    def adapt_and_predict(self, task, state, training):
        if training:
            type(self).traces += 1
        return super().adapt_and_predict(task, state, training)


def test_training_on_padded_episodes_of_many_shapes_traces_once():
    data = tfmeta.data.variable_episodes(toy_source(), CONFIG, meta_batch_size=2, seed=0)
    shapes = {tuple(b["ways"].numpy()) for b in data.take(4)}
    assert len(shapes) > 2
    learner = compiled(CountingMAML(classifier(), head_initialization="zeros"))
    learner.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    traces = CountingMAML.traces  # Keras's first step (one trace, or two with its build)
    history = learner.fit(data.skip(1), steps_per_epoch=3, epochs=1, verbose=0)
    assert CountingMAML.traces == traces <= 2
    assert np.isfinite(history.history["loss"]).all()


def test_zero_head_starts_every_task_uniform_over_its_classes():
    batch = padded_batch()
    model = classifier()
    learner = compiled(tfmeta.MAML(model, head_initialization="zeros", eval_inner_steps=0))
    scores = learner.query_scores(learner.checked_episodes(batch))
    for task, ways in enumerate(batch["ways"].numpy()):
        query = batch["query_mask"][task].numpy()
        for predictions in (scores["predictions"], scores["pre_adaptation_predictions"]):
            np.testing.assert_array_equal(predictions[task][query][:, :ways], 0.0)
            assert np.all(predictions[task][query][:, ways:] == -1e30)
        np.testing.assert_allclose(scores["loss"][task], np.log(ways), rtol=1e-6)
    # The meta-learned head is never read: it gets no meta-gradient, and its values change nothing.
    one_step = compiled(tfmeta.MAML(model, head_initialization="zeros", inner_learning_rate=0.3))
    before = one_step.predict_on_batch(batch)
    _, grads, _, _ = one_step.compute_meta_gradients(batch)
    assert not grads[-1].numpy().any() and not grads[-2].numpy().any()
    assert grads[0].numpy().any()
    model.layers[-1].kernel.assign(tf.ones_like(model.layers[-1].kernel))
    np.testing.assert_array_equal(one_step.predict_on_batch(batch), before)


def test_second_order_meta_gradient_on_a_padded_episode_matches_finite_differences():
    data = tfmeta.data.variable_episodes(toy_source(size=2), CONFIG, meta_batch_size=2, seed=3)
    batch = {key: tf.cast(value, tf.float64) if value.dtype == tf.float32 else value
             for key, value in next(iter(data)).items()}
    assert batch["ways"].numpy().min() < N  # absent classes in the inner and outer losses
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((2, 2, 1), dtype="float64"),
        keras.layers.Flatten(dtype="float64"),
        keras.layers.Dense(3, use_bias=False, dtype="float64"),
        keras.layers.BatchNormalization(dtype="float64"),
        keras.layers.Activation("tanh", dtype="float64"),
        keras.layers.Dense(N, dtype="float64"),
    ])
    learner = compiled(tfmeta.MAML(model, inner_learning_rate=0.5, inner_steps=2))
    meta_gradients = tf.function(learner.compute_meta_gradients)
    _, grads, _, _ = meta_gradients(batch)
    variables = learner.model.trainable_variables
    numeric = finite_differences.gradients(lambda: float(meta_gradients(batch)[0]), variables)
    for variable, grad, expected in zip(variables, grads, numeric):
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-9, err_msg=variable.path)


def test_head_initialization_round_trips_through_the_config():
    learner = compiled(tfmeta.MAML(classifier(), head_initialization="zeros"))
    restored = tfmeta.MAML.from_config(learner.get_config())
    assert restored.head_initialization == "zeros"
    assert tfmeta.MetaSGD.from_config(
        tfmeta.MetaSGD(classifier(), head_initialization="zeros").get_config()
    ).head_initialization == "zeros"


def test_unknown_head_initialization_is_rejected():
    with pytest.raises(ValueError, match="`head_initialization` to be one of .*'prototypes'"):
        tfmeta.MAML(classifier(), head_initialization="prototypes")


def test_zero_head_needs_a_final_dense_layer():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.BatchNormalization()])
    message = ("last layer with trainable weights is a `keras.layers.Dense`"
               ".* ending in layer 'batch_normalization")
    with pytest.raises(ValueError, match=message):
        tfmeta.MAML(model, head_initialization="zeros")


def test_head_narrower_than_the_episode_ways_is_rejected():
    batch = padded_batch()
    largest = int(batch["ways"].numpy().max())
    learner = compiled(tfmeta.MAML(classifier(outputs=largest - 1)))
    with pytest.raises(ValueError, match=f"at most {largest - 1} ways .* Received: an episode of "
                                         f"{largest} ways"):
        learner.predict_on_batch(batch)


def test_padded_regression_episodes_are_rejected():
    batch = dict(padded_batch())
    batch["support_y"] = tf.cast(batch["support_y"], tf.float32)[..., tf.newaxis]
    batch["query_y"] = tf.cast(batch["query_y"], tf.float32)[..., tf.newaxis]
    learner = compiled(tfmeta.MAML(classifier(outputs=1)))
    with pytest.raises(ValueError, match="Expected class-id targets in padded episodes"):
        learner.predict_on_batch(batch)
