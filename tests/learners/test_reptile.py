"""Reptile: the meta-update is theta + epsilon * (mean phi - theta); annealing; saving; Omniglot."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import adaptation, checkpointing
from tfmeta.learners import reptile as reptile_lib
from learner_testing import conv4_paper_reptile, sinusoid_batch, tiny_model
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
    assert (restored.inner_steps, restored.eval_inner_steps,
            restored.query_statistics) == (2, 3, "moving")
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


def _adam_by_hand(model, loss_fn, support_x, support_y, rate, steps, beta2=0.999, epsilon=1e-8,
                  second=None, step_count=0):
    """`(params, second_moments)` after Adam with beta1 = 0 from `second` (default: zero) at
    step `step_count`, in float64 numpy (TF1 AdamOptimizer's form); only the gradients come
    from TensorFlow, each at the hand-computed weights."""
    params = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    second = [np.zeros_like(p) for p in params] if second is None else [s.copy() for s in second]
    for t in range(step_count + 1, step_count + steps + 1):
        _, grads, _ = adaptation.loss_and_gradients(
            model, loss_fn, [tf.constant(p) for p in params], [], support_x, support_y,
            wrt=range(len(params)))
        for i, g in enumerate(g.numpy() for g in grads):
            second[i] = beta2 * second[i] + (1 - beta2) * g * g  # first moment: g (beta1 = 0)
            step_size = rate * np.sqrt(1 - beta2**t)  # / (1 - 0**t) = 1
            params[i] = params[i] - step_size * g / (np.sqrt(second[i]) + epsilon)
    return params, second


@pytest.mark.parametrize("steps", [1, 3])
def test_inner_adam_steps_equal_a_hand_computation_with_beta1_zero(steps):
    rate = 0.01
    learner = tfmeta.Reptile(tiny_model(), inner_optimizer="adam", inner_learning_rate=rate,
                             inner_steps=steps)
    learner.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    batch = sinusoid_batch(tasks=1)
    x, y = batch["support_x"][0], batch["support_y"][0]
    phi, _ = learner.adapt(x, y, training=True)
    expected, _ = _adam_by_hand(learner.model, learner.task_loss, x, y, rate, steps)
    for got, want in zip(phi, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    # Not SGD: from zero moments the first step moves each weight by the rate times the
    # sign of its gradient (up to epsilon), whatever the gradient's size.
    theta = [v.numpy() for v in learner.model.trainable_variables]
    if steps == 1:
        moved = np.concatenate([np.abs(p.numpy() - t).ravel() for p, t in zip(phi, theta)])
        assert moved.max() <= rate and np.median(moved) == pytest.approx(rate, rel=1e-5)


def test_every_task_of_a_meta_batch_starts_adam_afresh():
    """Each task's Adam moments start at zero: the meta-update is the mean of the tasks
    adapted alone, and swapping the tasks of the meta-batch changes nothing."""
    epsilon, rate, steps = 0.5, 0.02, 3
    batch = sinusoid_batch(tasks=2)
    swapped = {key: tf.reverse(value, axis=[0]) for key, value in batch.items()}

    def trained(meta_batch):
        learner = tfmeta.Reptile(tiny_model(), inner_optimizer="adam",
                                 inner_learning_rate=rate, inner_steps=steps)
        learner.compile(optimizer=keras.optimizers.SGD(epsilon), loss="mse")
        theta = [v.numpy().copy() for v in learner.model.trainable_variables]
        alone = [learner.adapt(meta_batch["support_x"][i], meta_batch["support_y"][i],
                               training=True)[0] for i in range(2)]
        learner.train_on_batch(meta_batch)  # graph mode
        return theta, [[p.numpy() for p in phi] for phi in alone], [
            v.numpy() for v in learner.model.trainable_variables]

    theta, (phi_a, phi_b), weights = trained(batch)
    _, _, weights_swapped = trained(swapped)
    for old, a, b, new, new_swapped in zip(theta, phi_a, phi_b, weights, weights_swapped):
        np.testing.assert_allclose(new, old + epsilon * ((a + b) / 2 - old), rtol=1e-12,
                                   atol=1e-14)
        np.testing.assert_allclose(new_swapped, new, rtol=1e-12, atol=1e-14)
    # the tasks differ, so a state carried from one into the other would show
    assert max(np.abs(a - b).max() for a, b in zip(phi_a, phi_b)) > 1e-3
    assert max(np.abs(new - old).max() for new, old in zip(weights, theta)) > 1e-3


def _carrying_learner(rate=0.01, steps=2, eval_steps=3, step_count=7.0, seed=0):
    """A Reptile with carried Adam moments set to `step_count` and random second moments."""
    learner = tfmeta.Reptile(tiny_model(), inner_optimizer="adam", inner_learning_rate=rate,
                             inner_steps=steps, eval_inner_steps=eval_steps,
                             carry_inner_moments=True)
    learner.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    rng = np.random.default_rng(seed)
    step_variable, *second_variables = learner.inner_moment_variables
    step_variable.assign(step_count)
    for variable in second_variables:
        variable.assign(rng.uniform(1e-4, 1e-2, variable.shape))
    return learner


def _moments(learner):
    step_variable, *second_variables = learner.inner_moment_variables
    return float(step_variable.numpy()), [v.numpy().copy() for v in second_variables]


def test_carried_moments_start_every_task_and_training_writes_back_their_task_mean():
    rate, steps, eval_steps = 0.01, 2, 3
    learner = _carrying_learner(rate, steps, eval_steps)
    step_count, second = _moments(learner)
    batch = sinusoid_batch(tasks=2)
    theta = [v.numpy().copy() for v in learner.model.trainable_variables]
    by_hand = [
        _adam_by_hand(learner.model, learner.task_loss, batch["support_x"][i],
                      batch["support_y"][i], rate, steps, second=second, step_count=7)
        for i in range(2)
    ]
    for i, (expected, _) in enumerate(by_hand):
        phi, _ = learner.adapt(batch["support_x"][i], batch["support_y"][i], training=True)
        for got, want in zip(phi, expected):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    # evaluation: its own steps from the same moments, which it does not move
    expected, _ = _adam_by_hand(learner.model, learner.task_loss, batch["support_x"][0],
                                batch["support_y"][0], rate, eval_steps, second=second,
                                step_count=7)
    phi, _ = learner.adapt(batch["support_x"][0], batch["support_y"][0])
    for got, want in zip(phi, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    learner.predict_on_batch(batch)
    learner.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0)
    assert _moments(learner)[0] == step_count
    for before, after in zip(second, _moments(learner)[1]):
        np.testing.assert_array_equal(after, before)

    learner.train_on_batch(batch)
    new_step_count, new_second = _moments(learner)
    assert new_step_count == step_count + steps
    for got, a, b in zip(new_second, by_hand[0][1], by_hand[1][1]):
        np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-12)
    for variable, old, a, b in zip(learner.model.trainable_variables, theta,
                                   by_hand[0][0], by_hand[1][0]):
        np.testing.assert_allclose(variable.numpy(), old + 0.5 * ((a + b) / 2 - old),
                                   rtol=1e-12, atol=1e-14)
    # carried, the moments change the step: not the update from zero moments
    fresh, _ = _adam_by_hand(learner.model, learner.task_loss, batch["support_x"][0],
                             batch["support_y"][0], rate, steps)
    assert max(np.abs(f - p).max() for f, p in zip(fresh, by_hand[0][0])) > 1e-3


def test_carried_moments_round_trip_through_save_and_checkpoint(tmp_path):
    learner = _carrying_learner()
    batch = sinusoid_batch(tasks=2)
    learner.train_on_batch(batch)
    path = tmp_path / "reptile_carried.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert restored.carry_inner_moments
    assert _moments(restored)[0] == _moments(learner)[0]
    for got, want in zip(_moments(restored)[1], _moments(learner)[1]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))

    checkpoint = checkpointing.MetaCheckpoint(tmp_path / "checkpoints")
    learner.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2, verbose=0,
                callbacks=[checkpoint])
    resumed = _carrying_learner(step_count=0.0, seed=1)
    resumed.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2,
                initial_epoch=1, epochs=1, verbose=0,  # restores, trains nothing past it
                callbacks=[checkpointing.MetaCheckpoint(tmp_path / "checkpoints")])
    assert _moments(resumed)[0] == _moments(learner)[0]
    for got, want in zip(_moments(resumed)[1], _moments(learner)[1]):
        np.testing.assert_array_equal(got, want)


def test_inner_optimizer_round_trips_through_config_and_save(tmp_path):
    learner = tfmeta.Reptile(tiny_model(), inner_optimizer="adam", inner_learning_rate=0.01,
                             inner_steps=2, eval_inner_steps=4, inner_beta2=0.99,
                             inner_epsilon=1e-6)
    learner.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    config = learner.get_config()
    assert (config["inner_optimizer"], config["inner_beta1"], config["inner_beta2"],
            config["inner_epsilon"]) == ("adam", 0.0, 0.99, 1e-6)
    copy = tfmeta.Reptile.from_config(config)
    assert copy.inner_update_rule() == learner.inner_update_rule()
    batch = sinusoid_batch(tasks=2)
    learner.train_on_batch(batch)
    path = tmp_path / "reptile_adam.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert restored.inner_optimizer == "adam"
    assert restored.inner_update_rule() == adaptation.Adam(0.0, 0.99, 1e-6)
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))
    plain = tfmeta.Reptile(tiny_model())
    assert plain.get_config()["inner_optimizer"] == "sgd"
    assert plain.inner_update_rule() == adaptation.SGD()


@pytest.mark.parametrize("kwargs, message", [
    ({"inner_optimizer": "rmsprop"},
     r"`inner_optimizer` to be one of \['sgd', 'adam'\]. Received: inner_optimizer='rmsprop'"),
    ({"inner_optimizer": "adam", "inner_learning_rate": -0.001},
     "`inner_learning_rate` to be a finite float >= 0. Received: inner_learning_rate=-0.001"),
    ({"inner_optimizer": "adam", "inner_beta2": 1.0}, r"`beta2` in \[0, 1\). Received: beta2=1.0"),
    ({"inner_optimizer": "adam", "inner_beta1": -0.1}, r"`beta1` in \[0, 1\)"),
    ({"inner_optimizer": "adam", "inner_epsilon": 0.0}, "`epsilon` > 0. Received: epsilon=0.0"),
    ({"carry_inner_moments": True}, "Expected inner_optimizer='adam' with "
     r"`carry_inner_moments=True` \(plain SGD keeps no moments\). Received: "
     "inner_optimizer='sgd'"),
])
def test_bad_inner_optimizer_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfmeta.Reptile(tiny_model(), **kwargs)


def _conv4_reptile(score_training_queries: bool) -> tfmeta.Reptile:
    """`conv4_paper_reptile`, compiled with an outer SGD step of 1."""
    keras.utils.set_random_seed(0)
    learner = conv4_paper_reptile(score_training_queries)
    learner.compile(optimizer=keras.optimizers.SGD(1.0),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    return learner


def test_unscored_training_queries_leave_the_update_unchanged_and_log_its_norm(
        omniglot_like_batch):
    scored, unscored = _conv4_reptile(True), _conv4_reptile(False)
    batch = omniglot_like_batch(tasks=2, shots=2)
    scored_logs = scored.train_on_batch(batch, return_dict=True)
    unscored_logs = unscored.train_on_batch(batch, return_dict=True)
    assert set(scored_logs) == {"loss", "accuracy"}
    assert set(unscored_logs) == {"pseudo_gradient_norm"}
    for got, want in zip(unscored.trainable_variables, scored.trainable_variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for got, want in zip(unscored.inner_moment_variables, scored.inner_moment_variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    # One task and an outer step of 1: the logged norm is the distance the weights moved.
    theta = [v.numpy() for v in unscored.trainable_variables]
    logs = unscored.train_on_batch(omniglot_like_batch(tasks=1, shots=2), return_dict=True)
    moved = np.sqrt(sum(np.sum((t - v.numpy()) ** 2)
                        for t, v in zip(theta, unscored.trainable_variables)))
    assert logs["pseudo_gradient_norm"] == pytest.approx(moved, rel=1e-5)
    history = unscored.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2,
                           epochs=2, verbose=0)
    assert list(history.history) == ["pseudo_gradient_norm"]
    assert np.all(np.isfinite(history.history["pseudo_gradient_norm"]))
    scores = unscored.evaluate(batch, return_dict=True, verbose=0)  # evaluation still scores
    assert {"loss", "accuracy"} <= set(scores)


def test_score_training_queries_round_trips_through_config_and_rejects_non_booleans():
    learner = tfmeta.Reptile(tiny_model(), score_training_queries=False)
    config = learner.get_config()
    assert config["score_training_queries"] is False
    assert tfmeta.Reptile.from_config(config).score_training_queries is False
    assert tfmeta.Reptile(tiny_model()).score_training_queries is True
    with pytest.raises(ValueError, match="Expected `score_training_queries` to be True or False. "
                                         "Received: score_training_queries='no'"):
        tfmeta.Reptile(tiny_model(), score_training_queries="no")


def test_minibatch_indices_run_through_passes_each_in_its_own_random_order():
    seed = tf.constant([3, 0], tf.int64)
    indices = adaptation.minibatch_indices(7, 3, 5, seed).numpy()
    assert indices.shape == (5, 3)
    flat = indices.ravel()
    for start in (0, 7):  # two whole passes, then the third's first example
        assert sorted(flat[start:start + 7]) == list(range(7))
    assert not np.array_equal(flat[:7], flat[7:14])  # each pass reshuffled
    np.testing.assert_array_equal(adaptation.minibatch_indices(7, 3, 5, seed), indices)
    other = adaptation.minibatch_indices(7, 3, 5, tf.constant([3, 1], tf.int64))
    assert not np.array_equal(other, indices)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def dynamic(examples):  # a padded task's support size is only known when it runs
        return adaptation.minibatch_indices(tf.shape(examples)[0], 4, 3, seed)

    np.testing.assert_array_equal(dynamic(tf.zeros([2])).numpy().ravel(),
                                  adaptation.minibatch_indices(2, 4, 3, seed).numpy().ravel())
    assert sorted(dynamic(tf.zeros([2])).numpy().ravel()[:2]) == [0, 1]


def _sgd_on_minibatches(model, loss_fn, support_x, support_y, rate, batches):
    """Float64 SGD by hand, step `s` on the examples `batches[s]`; gradients from TF."""
    params = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    for batch in np.asarray(batches):
        _, grads, _ = adaptation.loss_and_gradients(
            model, loss_fn, [tf.constant(p) for p in params], [],
            tf.gather(support_x, batch), tf.gather(support_y, batch), wrt=range(len(params)))
        params = [p - rate * g.numpy() for p, g in zip(params, grads)]
    return params


def _minibatch_learner(**kwargs):
    settings = dict(inner_learning_rate=0.05, inner_steps=3, inner_batch_size=2,
                    eval_inner_steps=4, eval_inner_batch_size=3, seed=5)
    learner = tfmeta.Reptile(tiny_model(), **dict(settings, **kwargs))
    learner.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    return learner


def test_inner_steps_on_minibatches_equal_a_hand_computation():
    learner = _minibatch_learner()
    batch = sinusoid_batch(tasks=2, shots=5)
    x, y = batch["support_x"][0], batch["support_y"][0]
    seed_state = learner.minibatch_seed_generator.state.numpy()
    np.testing.assert_array_equal(seed_state, [5, 0])
    for training, size, steps, seed in ((True, 2, 3, seed_state),
                                        (False, 3, 4, reptile_lib.EVALUATION_MINIBATCH_SEED)):
        batches = adaptation.minibatch_indices(5, size, steps, tf.constant(seed, tf.int64))
        expected = _sgd_on_minibatches(learner.model, learner.task_loss, x, y, 0.05, batches)
        phi, _ = learner.adapt(x, y, training=training)
        for got, want in zip(phi, expected):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
        whole = _sgd_on_minibatches(learner.model, learner.task_loss, x, y, 0.05,
                                    [np.arange(5)] * steps)
        assert max(np.abs(w - p).max() for w, p in zip(whole, expected)) > 1e-4


def test_every_task_draws_its_own_minibatches_and_each_meta_update_fresh_ones():
    learner = _minibatch_learner()
    batch = sinusoid_batch(tasks=2, shots=5)
    theta = [v.numpy().copy() for v in learner.model.trainable_variables]
    phis = [  # task i's stream: the seed offset by its index in the meta-batch
        _sgd_on_minibatches(learner.model, learner.task_loss, batch["support_x"][i],
                            batch["support_y"][i], 0.05,
                            adaptation.minibatch_indices(
                                5, 2, 3, tf.constant([5 + i, 0], tf.int64)))
        for i in range(2)
    ]
    learner.train_on_batch(batch)
    for variable, old, a, b in zip(learner.model.trainable_variables, theta, *phis):
        np.testing.assert_allclose(variable.numpy(), old + 0.5 * ((a + b) / 2 - old),
                                   rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(learner.minibatch_seed_generator.state.numpy(), [5, 1])
    learner.train_on_batch(batch)
    np.testing.assert_array_equal(learner.minibatch_seed_generator.state.numpy(), [5, 2])


def test_evaluation_minibatches_depend_only_on_the_task():
    """Prediction is a function of the support set: the same in every call and at every
    place in a meta-batch, and it leaves the seed's state alone."""
    learner = _minibatch_learner()
    batch = sinusoid_batch(tasks=3, shots=5)
    swapped = {key: tf.reverse(value, axis=[0]) for key, value in batch.items()}
    predictions = learner.predict_on_batch(batch)
    np.testing.assert_array_equal(learner.predict_on_batch(batch), predictions)
    np.testing.assert_allclose(learner.predict_on_batch(swapped)[::-1], predictions,
                               rtol=1e-12, atol=1e-15)
    learner.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0)
    np.testing.assert_array_equal(learner.minibatch_seed_generator.state.numpy(), [5, 0])


def test_minibatch_settings_round_trip_and_a_checkpoint_resumes_the_draws(tmp_path):
    learner = _minibatch_learner(inner_optimizer="adam", inner_learning_rate=0.01,
                                 carry_inner_moments=True)
    batch = sinusoid_batch(tasks=2, shots=5)
    learner.train_on_batch(batch)
    path = tmp_path / "reptile_minibatches.keras"
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert (restored.inner_batch_size, restored.eval_inner_batch_size, restored.seed) == (2, 3, 5)
    np.testing.assert_array_equal(learner.predict_on_batch(batch), restored.predict_on_batch(batch))

    data = tf.data.Dataset.from_tensors(batch).repeat()
    learner.fit(data, steps_per_epoch=2, verbose=0,
                callbacks=[checkpointing.MetaCheckpoint(tmp_path / "checkpoints")])
    resumed = _minibatch_learner(inner_optimizer="adam", inner_learning_rate=0.01,
                                 carry_inner_moments=True, seed=9)
    resumed.fit(data, steps_per_epoch=2, initial_epoch=1, epochs=1, verbose=0,
                callbacks=[checkpointing.MetaCheckpoint(tmp_path / "checkpoints")])
    np.testing.assert_array_equal(resumed.minibatch_seed_generator.state.numpy(),
                                  learner.minibatch_seed_generator.state.numpy())
    learner.train_on_batch(batch)
    resumed.train_on_batch(batch)  # the same draws as the uninterrupted run
    for got, want in zip(resumed.model.trainable_variables, learner.model.trainable_variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("name", ["inner_batch_size", "eval_inner_batch_size"])
@pytest.mark.parametrize("value", [0, -2, 2.5, True])
def test_bad_minibatch_sizes_are_rejected(name, value):
    with pytest.raises(ValueError, match=f"Expected `{name}` to be an integer >= 1 or None. "
                                         f"Received: {name}={value!r}"):
        tfmeta.Reptile(tiny_model(), **{name: value})
