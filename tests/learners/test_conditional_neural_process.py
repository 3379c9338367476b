"""Conditional Neural Processes: the mean-aggregated encoding, order invariance, training,
save/load and clear errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import ConditionalNeuralProcess


def small_cnp(dtype="float32", seed=0, x_dim=1, y_dim=1):
    """A compiled CNP with a 2 x 16 encoder and a 1 x 16 decoder."""
    keras.utils.set_random_seed(seed)
    encoder = keras.Sequential([keras.Input((x_dim + y_dim,), dtype=dtype),
                                keras.layers.Dense(16, activation="relu", dtype=dtype),
                                keras.layers.Dense(16, dtype=dtype)])
    decoder = keras.Sequential([keras.Input((16 + x_dim,), dtype=dtype),
                                keras.layers.Dense(16, activation="relu", dtype=dtype),
                                keras.layers.Dense(2 * y_dim, dtype=dtype)])
    cnp = ConditionalNeuralProcess(encoder, decoder)
    cnp.compile(optimizer=keras.optimizers.Adam(3e-3),
                loss=tfmeta.losses.GaussianNegativeLogLikelihood())
    return cnp


def gp_batch(tasks=3, support=6, queries=4, seed=0, dtype=tf.float32):
    source = tfmeta.data.GaussianProcessTasks(dtype=dtype)
    return next(iter(source.episodes(support, queries, meta_batch_size=tasks, seed=seed)))


def test_predictions_decode_the_mean_encoding_of_the_context_pairs():
    cnp = small_cnp("float64")
    batch = gp_batch(dtype=tf.float64)
    predictions = cnp.predict_on_batch(batch)
    assert predictions.shape == (3, 4, 1, 2)
    for task in range(3):
        context = np.concatenate([batch["support_x"][task], batch["support_y"][task]], axis=1)
        r = cnp.encoder(context).numpy().mean(axis=0)
        decoder_inputs = np.concatenate([np.tile(r, (4, 1)), batch["query_x"][task]], axis=1)
        raw = cnp.decoder(decoder_inputs).numpy()
        stddev = 0.1 + 0.9 * np.log1p(np.exp(raw[:, 1]))
        np.testing.assert_allclose(predictions[task, :, 0, 0], raw[:, 0], rtol=1e-12)
        np.testing.assert_allclose(predictions[task, :, 0, 1], stddev, rtol=1e-12)
    assert predictions[..., 1].min() > 0.1


def test_predictions_do_not_depend_on_the_order_of_the_context_points():
    cnp = small_cnp()
    batch = gp_batch(support=8)
    order = np.random.default_rng(1).permutation(8)
    permuted = {**batch, "support_x": tf.gather(batch["support_x"], order, axis=1),
                "support_y": tf.gather(batch["support_y"], order, axis=1)}
    np.testing.assert_allclose(cnp.predict_on_batch(batch), cnp.predict_on_batch(permuted),
                               rtol=1e-5, atol=1e-6)
    # ...but they do depend on the context: another curve's targets change them.
    other = {**batch, "support_y": batch["support_y"] + 1.0}
    assert not np.allclose(cnp.predict_on_batch(batch), cnp.predict_on_batch(other), atol=1e-3)
    # ...and each query is predicted on its own.
    alone = {**batch, "query_x": batch["query_x"][:, :1], "query_y": batch["query_y"][:, :1]}
    np.testing.assert_allclose(cnp.predict_on_batch(alone), cnp.predict_on_batch(batch)[:, :1],
                               rtol=1e-5, atol=1e-6)


def test_negative_log_likelihood_on_held_out_curves_decreases_in_a_short_training():
    cnp = small_cnp()
    tasks = tfmeta.data.GaussianProcessTasks()
    held_out = tasks.episodes(10, 20, meta_batch_size=16, num_episodes=64, seed=1)
    before = cnp.evaluate(held_out, verbose=0, return_dict=True)["loss"]
    history = cnp.fit(tasks.episodes(10, 20, meta_batch_size=16, seed=0), epochs=2,
                      steps_per_epoch=100, verbose=0)
    after = cnp.evaluate(held_out, verbose=0, return_dict=True)["loss"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert after < before - 0.3, (before, after)
    assert "pre_adaptation_loss" not in cnp.evaluate(held_out, verbose=0, return_dict=True)


def test_meta_update_then_save_and_load_round_trip(tmp_path):
    cnp = small_cnp()
    batch = gp_batch()
    before = [v.numpy().copy() for v in cnp.meta_variables]
    cnp.train_on_batch(batch)
    unchanged = [v.path for b, v in zip(before, cnp.meta_variables) if np.array_equal(b, v.numpy())]
    assert not unchanged  # the meta-gradient reaches encoder and decoder
    path = tmp_path / "cnp.keras"
    cnp.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is ConditionalNeuralProcess
    assert (restored.x_dim, restored.y_dim, restored.min_stddev) == (1, 1, 0.1)
    np.testing.assert_array_equal(cnp.predict_on_batch(batch), restored.predict_on_batch(batch))
    for saved, loaded in zip(cnp.meta_variables, restored.meta_variables):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    restored.train_on_batch(batch)  # the optimizer state came back too


def test_more_input_and_target_dimensions():
    cnp = small_cnp(x_dim=2, y_dim=3)
    batch = {"support_x": tf.random.normal([2, 5, 2]), "support_y": tf.random.normal([2, 5, 3]),
             "query_x": tf.random.normal([2, 4, 2]), "query_y": tf.random.normal([2, 4, 3])}
    assert cnp.predict_on_batch(batch).shape == (2, 4, 3, 2)
    assert np.isfinite(cnp.train_on_batch(batch))


def test_bad_episodes_raise_one_clear_error():
    cnp = small_cnp()
    batch = gp_batch()
    nan = {**batch, "support_y": tf.tensor_scatter_nd_update(batch["support_y"], [[1, 2, 0]],
                                                             [float("nan")])}
    with pytest.raises(tfmeta.data.episode.EpisodeError,
                       match="Expected finite values in `support_y`") as error:
        cnp.train_on_batch(nan)
    assert "\n" not in str(error.value)
    empty = {**batch, "support_x": batch["support_x"][:, :0],
             "support_y": batch["support_y"][:, :0]}
    with pytest.raises(ValueError, match="Expected at least one (task and one )?support example"):
        cnp.predict_on_batch(empty)
    cases = [
        ({**batch, **{key: tf.concat([batch[key]] * 2, -1) for key in ("support_x", "query_x")}},
         r"Expected `support_x` of shape \[tasks, points, x_dim=1\] \(ConditionalNeuralProcess "
         r"with x_dim=1, y_dim=1\). Received: support_x.shape=\(3, 6, 2\)"),
        ({**batch, "support_y": batch["support_y"][..., 0]},
         r"Expected `support_y` of shape \[tasks, points, y_dim=1\]"),
        ({**batch, "query_y": tf.cast(batch["query_y"], tf.int32)},
         r"Expected floating-point regression targets in `query_y`"),
    ]
    for episodes, message in cases:
        with pytest.raises(ValueError, match=message):
            cnp.predict_on_batch(episodes)
    with pytest.raises(ValueError, match="ConditionalNeuralProcess predicts from a context set"):
        cnp(batch["query_x"][0])


def test_invalid_arguments_are_refused():
    encoder, decoder = tfmeta.models.cnp_encoder(), tfmeta.models.cnp_decoder()
    with pytest.raises(ValueError, match=r"Expected `min_stddev` to be a float in \[0, 1\)"):
        ConditionalNeuralProcess(encoder, decoder, min_stddev=1.0)
    with pytest.raises(ValueError, match=r"Expected an encoder from concat\(x, y\).*Received: "
                                         r"encoder 2 -> 128, decoder 130 -> 2"):
        ConditionalNeuralProcess(encoder, tfmeta.models.cnp_decoder(x_dim=2))
    with pytest.raises(ValueError, match=r"Received: encoder 2 -> 128, decoder 129 -> 3"):
        ConditionalNeuralProcess(encoder, keras.Sequential([keras.Input((129,)),
                                                            keras.layers.Dense(3)]))
    flat = keras.Sequential([keras.Input((4, 2)), keras.layers.Dense(8)])
    message = r"Expected the encoder to have flat inputs of shape \(features,\). Received: model"
    with pytest.raises(ValueError, match=message):
        ConditionalNeuralProcess(flat, decoder)


def test_xla_compiled_training_and_prediction_match_the_default():
    batch = gp_batch()
    results = []
    for jit_compile in (False, True):
        cnp = small_cnp()
        cnp.compile(optimizer=keras.optimizers.Adam(3e-3), loss=cnp.loss, jit_compile=jit_compile)
        cnp.train_on_batch(batch)
        results.append(cnp.predict_on_batch(batch))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-4, atol=1e-5)
