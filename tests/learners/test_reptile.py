"""Reptile: the meta-update is theta + epsilon * (mean phi - theta); annealing; saving; Omniglot."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import adaptation
from learner_testing import sinusoid_batch, tiny_model
from tfmeta.data import SinusoidTasks


def test_meta_update_interpolates_towards_the_mean_adapted_weights():
    epsilon, inner_rate, steps = 0.25, 0.05, 3  # epsilon exact in float32 (the optimizer's dtype)
    learner = tfmeta.Reptile(tiny_model(), inner_learning_rate=inner_rate, inner_steps=steps)
    learner.compile(optimizer=keras.optimizers.SGD(epsilon), loss="mse")
    batch = sinusoid_batch()

    model = learner.model
    theta = [v.numpy().copy() for v in model.trainable_variables]
    phis = []
    for task in range(3):
        params, state = adaptation.initial_weights(model)
        phi, _ = adaptation.adapt(
            model, learner.task_loss, params, state,
            batch["support_x"][task], batch["support_y"][task],
            learning_rates=adaptation.constant_learning_rates(inner_rate, steps, len(params)),
        )
        phis.append([p.numpy() for p in phi])
    mean_phi = [np.mean(per_weight, axis=0) for per_weight in zip(*phis)]

    learner.train_on_batch(batch)
    for variable, old, target in zip(model.trainable_variables, theta, mean_phi):
        expected = old + epsilon * (target - old)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert max(np.abs(t - o).max() for t, o in zip(mean_phi, theta)) > 1e-3


def test_meta_step_size_annealed_linearly_to_zero_freezes_the_weights():
    iterations = 4
    learner = tfmeta.Reptile(tiny_model(), inner_learning_rate=0.05, inner_steps=2)
    epsilon = keras.optimizers.schedules.PolynomialDecay(1.0, iterations, end_learning_rate=0.0)
    learner.compile(optimizer=keras.optimizers.SGD(epsilon), loss="mse")
    episodes = SinusoidTasks(dtype=tf.float64).episodes(5, 5, meta_batch_size=2, seed=0)
    learner.fit(episodes, steps_per_epoch=iterations, verbose=0)
    frozen = [v.numpy().copy() for v in learner.model.trainable_variables]
    learner.fit(episodes, steps_per_epoch=2, verbose=0)
    for old, variable in zip(frozen, learner.model.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())


def test_evaluation_adapts_with_the_evaluation_inner_loop():
    learner = tfmeta.Reptile(tiny_model(), inner_learning_rate=0.05, inner_steps=1,
                             eval_inner_learning_rate=0.1, eval_inner_steps=4)
    learner.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    batch = sinusoid_batch(tasks=1)
    params, _ = learner.adapt(batch["support_x"][0], batch["support_y"][0])
    expected, _ = adaptation.forward(learner.model, params, [], batch["query_x"][0], training=False)
    predictions = learner.predict_on_batch(batch)
    np.testing.assert_allclose(predictions[0], expected.numpy(), rtol=1e-12)
    logs = learner.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
    assert logs["loss"] < logs["pre_adaptation_loss"]


def test_saved_and_reloaded_reptile_gives_identical_outputs(tmp_path, omniglot_like_batch):
    keras.utils.set_random_seed(0)
    net = tfmeta.models.conv4(num_classes=5, filters=4)
    learner = tfmeta.Reptile(net, inner_learning_rate=0.1, inner_steps=2, eval_inner_steps=3,
                             query_statistics="moving")
    learner.compile(optimizer=keras.optimizers.SGD(1.0),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = omniglot_like_batch()
    learner.train_on_batch(batch)
    path = tmp_path / "reptile.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, tfmeta.Reptile)
    assert (restored.inner_steps, restored.eval_inner_steps, restored.query_statistics) == (2, 3, "moving")
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))


def test_non_positive_inner_steps_are_rejected():
    with pytest.raises(ValueError, match="Expected `inner_steps` to be an integer >= 0"):
        tfmeta.Reptile(tiny_model(), inner_steps=-1)


@pytest.mark.slow  # real training; MAML's and ProtoNet's run by default
def test_reptile_beats_chance_on_held_out_omniglot_characters(omniglot_5way_1shot):
    keras.utils.set_random_seed(0)
    learner = tfmeta.Reptile(tfmeta.models.conv4(num_classes=5, filters=32),
                             inner_learning_rate=0.5, inner_steps=3, eval_inner_steps=5)
    result = omniglot_5way_1shot(learner, iterations=150, optimizer=keras.optimizers.SGD(1.0))
    assert result["accuracy"] > 0.45, result  # chance: 0.2
