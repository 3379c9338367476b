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


def _files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _garble_state(directory):
    (directory / "checkpoint").write_text("garbage {{{")


def _truncate_newest_data(directory):
    data = directory / "ckpt-4.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-7])


def _garbage_newest_index(directory):
    (directory / "ckpt-4.index").write_bytes(b"not an index")


def _name_a_missing_checkpoint(directory):
    (directory / "checkpoint").write_text('model_checkpoint_path: "ckpt-6"\n')


DAMAGE = {
    # (damage, the checkpoint resumed from, what is reported)
    "garbled_state_file": (_garble_state, 4, "the state file 'checkpoint': it is unreadable"),
    "truncated_newest": (_truncate_newest_data, 2, "ckpt-4: it is unreadable"),
    "garbage_newest_index": (_garbage_newest_index, 2, "ckpt-4: it is unreadable"),
    "state_names_missing": (_name_a_missing_checkpoint, 4, "it names ckpt-6, which is missing"),
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[np.ndarray]:
    """The state after 4 epochs trained in one go."""
    whole = _learner()
    _fit(whole, tmp_path_factory.mktemp("whole"), epochs=4)
    return _state(whole)


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_checkpoints_fall_back_to_the_newest_valid_one_and_end_identical(
    tmp_path, damage, uninterrupted
):
    damage_fn, resumed_step, reported = DAMAGE[damage]
    directory = tmp_path / "parts"
    _fit(_learner(), directory, epochs=2)
    damage_fn(directory)
    valid = {name: data for name, data in _files(directory).items() if "ckpt-2" in name}

    point = checkpointing.find_resume_point(directory)
    assert point.step == resumed_step and point.path == str(directory / f"ckpt-{resumed_step}")
    assert any(reported in line for line in point.describe_rejected()), point.describe_rejected()
    assert {n: d for n, d in _files(directory).items() if "ckpt-2" in n} == valid  # only read

    resumed = _learner()
    checkpoint, _ = _fit(resumed, directory, epochs=4, initial_epoch=resumed_step // 2)
    assert checkpoint.resume_point.step == resumed_step and checkpoint.saved_step == 8
    for a, b in zip(uninterrupted, _state(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-8")
    assert checkpointing.find_resume_point(directory).rejected == ()


def test_non_finite_checkpoints_are_skipped(tmp_path):
    _fit(_learner(), tmp_path, epochs=2)
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-4"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("model_variables/0/")]
    poisoned = tf.train.Checkpoint(v=tf.Variable([np.nan]))
    poisoned.write(str(tmp_path / "ckpt-6"))  # readable, but holds NaN and no model variables
    assert checkpointing.checkpoint_problem(tmp_path / "ckpt-6") is not None
    assert names and checkpointing.checkpoint_problem(tmp_path / "ckpt-4") is None
    assert checkpointing.latest_step(tmp_path) == 4


def test_a_checkpoint_that_does_not_read_back_deletes_nothing(tmp_path, monkeypatch):
    learner = _learner()
    _fit(learner, tmp_path, epochs=2)
    before = _files(tmp_path)
    real_problem = checkpointing.checkpoint_problem

    def unreadable_step_6(prefix):
        return "simulated bad write" if str(prefix).endswith("ckpt-6") else real_problem(prefix)

    monkeypatch.setattr(checkpointing, "checkpoint_problem", unreadable_step_6)
    with pytest.raises(OSError, match="ckpt-6 just written does not read back: simulated"):
        _fit(learner, tmp_path, epochs=3, initial_epoch=2)
    after = _files(tmp_path)
    assert {n: after[n] for n in before} == before  # ckpt-2, ckpt-4 and the state file untouched
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")


def test_only_the_newest_checkpoints_are_kept_after_the_new_one_is_proven(tmp_path):
    _fit(_learner(), tmp_path, epochs=3)
    assert checkpointing.checkpoint_steps(tmp_path) == [6, 4]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path.endswith("ckpt-6")
    assert [p.rsplit("/", 1)[-1] for p in state.all_model_checkpoint_paths] == ["ckpt-4", "ckpt-6"]


def test_leftovers_of_a_killed_save_are_removed_when_training_starts(tmp_path):
    _fit(_learner(), tmp_path, epochs=1)
    (tmp_path / "ckpt-4_temp").mkdir()  # TensorFlow's sharded temporary folder
    (tmp_path / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001.tempstate123").write_bytes(
        b"\0" * 64
    )
    (tmp_path / "checkpoint.tmp0123abcd").write_bytes(b"")  # a state file write cut short
    (tmp_path / "notes.txt").write_text("mine")
    _fit(_learner(), tmp_path, epochs=1, initial_epoch=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
        "notes.txt",
    ]


def test_max_to_keep_must_be_positive():
    with pytest.raises(ValueError, match="Expected `max_to_keep` to be an integer >= 1"):
        checkpointing.MetaCheckpoint("run", max_to_keep=0)
