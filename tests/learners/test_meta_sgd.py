"""Meta-SGD: per-parameter learned inner learning rates, meta-learned with the weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import adaptation
from learner_testing import sinusoid_batch, tiny_model


def compiled_meta_sgd(**kwargs):
    learner = tfmeta.MetaSGD(tiny_model(), **kwargs)
    learner.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return learner


def test_one_learning_rate_per_parameter_initialised_to_the_inner_learning_rate():
    learner = compiled_meta_sgd(inner_learning_rate=0.07)
    rates = learner.inner_learning_rate_variables
    weights = learner.model.trainable_variables
    assert [tuple(r.shape) for r in rates] == [tuple(v.shape) for v in weights]
    for rate in rates:
        np.testing.assert_allclose(rate.numpy(), 0.07)
    assert learner.meta_variables == learner.model.trainable_variables + rates


def test_inner_step_scales_each_gradient_entry_by_its_own_rate():
    learner = compiled_meta_sgd(inner_learning_rate=0.1, inner_steps=2)
    random = np.random.default_rng(0)
    for rate in learner.inner_learning_rate_variables:
        rate.assign(random.uniform(0.0, 0.2, rate.shape))
    batch = sinusoid_batch(tasks=1)
    model = learner.model
    params, state = adaptation.initial_weights(model)
    rates = [tf.constant(r.numpy()) for r in learner.inner_learning_rate_variables]
    for _ in range(2):
        _, grads, state = adaptation.loss_and_gradients(
            model, learner.task_loss, params, state, batch["support_x"][0], batch["support_y"][0],
            wrt=range(len(params)),
        )
        params = [p - r * g for p, r, g in zip(params, rates, grads)]
    adapted, _ = learner.adapt(batch["support_x"][0], batch["support_y"][0], training=True)
    for got, want in zip(adapted, params):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_learning_rates_receive_gradients_and_change_after_a_train_step():
    learner = compiled_meta_sgd(inner_learning_rate=0.1)
    batch = sinusoid_batch()
    _, grads, _, _ = learner.compute_meta_gradients(batch)
    rate_grads = grads[len(learner.model.trainable_variables):]
    assert len(rate_grads) == len(learner.inner_learning_rate_variables)
    for grad in rate_grads:
        assert np.abs(grad.numpy()).max() > 1e-6
    before = [r.numpy().copy() for r in learner.inner_learning_rate_variables]
    learner.train_on_batch(batch)
    for old, rate in zip(before, learner.inner_learning_rate_variables):
        assert not np.allclose(old, rate.numpy())


def test_learning_rate_gradient_matches_finite_differences():
    learner = compiled_meta_sgd(inner_learning_rate=0.1, inner_steps=2)
    batch = sinusoid_batch()
    _, grads, _, _ = learner.compute_meta_gradients(batch)
    rate = learner.inner_learning_rate_variables[-1]  # the output bias's rate: one entry
    eps, original = 1e-6, rate.numpy()
    losses = []
    for sign in (1, -1):
        rate.assign(original + sign * eps)
        losses.append(float(learner.compute_meta_gradients(batch)[0]))
    rate.assign(original)
    numeric = (losses[0] - losses[1]) / (2 * eps)
    np.testing.assert_allclose(grads[-1].numpy(), [numeric], rtol=1e-5)


@pytest.mark.parametrize(
    "name, value",
    [("learned_inner_learning_rates", "per_layer_per_step"), ("eval_inner_learning_rate", 0.1)],
)
def test_options_fixed_by_meta_sgd_are_rejected(name, value):
    with pytest.raises(ValueError, match=f"`{name}` does not apply"):
        tfmeta.MetaSGD(tiny_model(), **{name: value})


def test_saved_and_reloaded_meta_sgd_keeps_its_learned_rates(tmp_path, omniglot_like_batch):
    keras.utils.set_random_seed(0)
    # First order: a second-order Conv-4 step takes 20 s to trace; the rates save alike.
    learner = tfmeta.MetaSGD(tfmeta.models.conv4(num_classes=5, filters=4), inner_learning_rate=0.3,
                             first_order=True)
    learner.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = omniglot_like_batch()
    learner.train_on_batch(batch)
    path = tmp_path / "meta_sgd.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, tfmeta.MetaSGD)
    for rate, restored_rate in zip(learner.inner_learning_rate_variables,
                                   restored.inner_learning_rate_variables):
        np.testing.assert_array_equal(rate.numpy(), restored_rate.numpy())
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))


@pytest.mark.slow  # real training; MAML's and ProtoNet's run by default
def test_meta_sgd_beats_chance_on_held_out_omniglot_characters(omniglot_5way_1shot):
    keras.utils.set_random_seed(0)
    learner = tfmeta.MetaSGD(tfmeta.models.conv4(num_classes=5, filters=32),
                             inner_learning_rate=0.4, inner_steps=1)
    result = omniglot_5way_1shot(learner, iterations=60, optimizer=keras.optimizers.Adam(0.005))
    assert result["accuracy"] > 0.5, result  # chance: 0.2
