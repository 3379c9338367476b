"""`MetaCheckpoint`: exact resume, atomic writes, no non-finite weights, mismatches refused."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import checkpointing

EPISODES = tfmeta.data.SinusoidTasks().episodes(5, 5, meta_batch_size=3, seed=0)


def _learner() -> tfmeta.MAML:
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ]
    )
    learner = tfmeta.MAML(net, inner_learning_rate=0.01)
    learner.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return learner


def _fit(learner, directory, epochs, initial_epoch=0, steps=2, callbacks=()):
    checkpoint = checkpointing.MetaCheckpoint(directory)
    history = learner.fit(
        EPISODES.skip(initial_epoch * steps),
        steps_per_epoch=steps,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=[*callbacks, checkpoint],
        verbose=0,
        shuffle=False,
    )
    return checkpoint, history


def _state(learner) -> list[np.ndarray]:
    return [np.asarray(v) for v in learner.variables + learner.optimizer.variables]


def test_resumed_training_matches_uninterrupted_training_exactly(tmp_path):
    whole = _learner()
    _, whole_history = _fit(whole, tmp_path / "whole", epochs=4)

    _fit(_learner(), tmp_path / "parts", epochs=2)
    assert checkpointing.latest_step(tmp_path / "parts") == 4
    resumed = _learner()  # fresh weights, overwritten by the restore
    checkpoint, history = _fit(resumed, tmp_path / "parts", epochs=4, initial_epoch=2)

    assert checkpoint.saved_step == 8
    assert history.history["loss"] == whole_history.history["loss"][2:]
    for a, b in zip(_state(whole), _state(resumed), strict=True):
        np.testing.assert_array_equal(a, b)  # weights, Dropout seed state, Adam slots, step


def test_an_unfinished_save_is_never_restored(tmp_path):
    learner = _learner()
    _fit(learner, tmp_path, epochs=1)
    saved = _state(learner)
    # A save of step 4 killed before the state file was updated: data files, no index entry.
    (tmp_path / "ckpt-4.data-00000-of-00001").write_bytes(b"\0" * 100)
    (tmp_path / "ckpt-4.index").write_bytes(b"partial")
    assert checkpointing.latest_step(tmp_path) == 2
    restored = _learner()
    _fit(restored, tmp_path, epochs=1, initial_epoch=1)  # restores, trains no epoch
    for a, b in zip(saved, _state(restored), strict=True):
        np.testing.assert_array_equal(a, b)


class _PoisonWeights(keras.callbacks.Callback):
    """Turns the first kernel into NaN after every training step."""

    def on_train_batch_end(self, batch, logs=None):
        kernel = self.model.model.layers[0].kernel
        kernel.assign(tf.fill(kernel.shape, np.nan))


def test_non_finite_weights_are_never_written(tmp_path):
    learner = _learner()
    _fit(learner, tmp_path, epochs=1)
    with pytest.raises(FloatingPointError, match="refusing to write the checkpoint of step 4"):
        _fit(learner, tmp_path, epochs=2, initial_epoch=1, callbacks=[_PoisonWeights()])
    assert checkpointing.latest_step(tmp_path) == 2


def test_check_finite_names_the_variables():
    good, bad = tf.Variable([1.0, 2.0], name="good"), tf.Variable([1.0, np.inf], name="bad")
    checkpointing.check_finite([good, tf.Variable([1, 2])], "export")
    with pytest.raises(FloatingPointError, match=r"refusing to write the export: 1 variable.*bad"):
        checkpointing.check_finite([good, bad], "export")


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    _fit(_learner(), tmp_path, epochs=1)
    keras.utils.set_random_seed(0)
    other = tfmeta.MAML(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    other.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    with pytest.raises(ValueError, match="does not match this model and optimizer"):
        _fit(other, tmp_path, epochs=2, initial_epoch=1)


def test_latest_step_of_an_empty_directory_is_zero(tmp_path):
    assert checkpointing.latest_step(tmp_path / "none") == 0
