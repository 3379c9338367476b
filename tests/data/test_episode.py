"""Meta-batches the learners refuse, through the Python API: one clear error, no weight changed.

Every case was accepted before the checks of `tfmeta.data.episode` and
trained weights to NaN, or gave NaN or meaningless finite metrics.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.data import episode as episode_lib

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _batch(tasks=2, ways=3, shots=1, queries=2, shape=(4,), label_dtype=np.int32):
    rng = np.random.default_rng(0)
    return {
        "support_x": rng.random((tasks, ways * shots, *shape), np.float32),
        "support_y": np.tile(np.repeat(np.arange(ways), shots), (tasks, 1)).astype(label_dtype),
        "query_x": rng.random((tasks, ways * queries, *shape), np.float32),
        "query_y": np.tile(np.repeat(np.arange(ways), queries), (tasks, 1)).astype(label_dtype),
    }


def _maml(outputs=3, shape=(4,)):
    keras.utils.set_random_seed(0)
    if len(shape) == 3:  # any image size fits these layers: only an input shape can tell
        layers = [keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D()]
    else:
        layers = []
    net = keras.Sequential([keras.Input(shape), *layers, keras.layers.Dense(outputs)])
    learner = tfmeta.MAML(net, inner_learning_rate=0.1)
    learner.compile(optimizer="adam", loss=CE if outputs > 1 else "mse", metrics=[])
    return learner


def _protonet():
    keras.utils.set_random_seed(0)
    learner = tfmeta.ProtoNet(keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)]))
    learner.compile(optimizer="adam", loss=CE)
    return learner


def _state(learner):
    learner.optimizer.build(learner.trainable_variables)
    return [np.array(v) for v in learner.variables + learner.optimizer.variables]


def _refused(learner, batch, error, message):
    """`train_on_batch` and `evaluate` both raise `error` matching `message`; nothing changes."""
    before = _state(learner)
    with pytest.raises(error, match=message):
        learner.train_on_batch(batch)
    with pytest.raises(error, match=message):
        learner.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0)
    for old, new in zip(before, _state(learner), strict=True):
        np.testing.assert_array_equal(old, new)


def test_a_meta_batch_without_tasks_is_refused():
    _refused(_maml(), _batch(tasks=0), ValueError, "Expected a meta-batch of at least one task")


def test_tasks_without_queries_or_support_are_refused():
    _refused(_maml(), _batch(queries=0), ValueError, "Expected at least one query per task")
    _refused(_maml(), _batch(shots=0), ValueError, "Expected at least one support example")


def test_sizes_known_only_at_run_time_are_checked_in_the_graph():
    spec = {key: tf.TensorSpec(None, tf.float32) for key in episode_lib.EPISODE_KEYS}

    @tf.function(input_signature=[spec])
    def check(episodes):
        return episode_lib.check_meta_batch_values(episodes)["query_x"]

    empty = {key: tf.zeros([0, 3, 4]) for key in episode_lib.EPISODE_KEYS}
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one task and one support"):
        check(empty)
    no_queries = dict(_batch(), query_x=tf.zeros([2, 0, 4]), query_y=tf.zeros([2, 0]))
    no_queries = {key: tf.cast(value, tf.float32) for key, value in no_queries.items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one task and one query"):
        check(no_queries)


@pytest.mark.parametrize("key, value", [("support_x", np.nan), ("query_x", np.inf)])
def test_non_finite_inputs_are_refused_in_the_graph(key, value):
    batch = _batch()
    batch[key][1, 0, 2] = value
    _refused(_maml(), batch, tf.errors.InvalidArgumentError, f"Expected finite values in `{key}`")


def test_non_finite_regression_targets_are_refused():
    batch = _batch(ways=1, shots=5, queries=5)
    for key in ("support", "query"):
        batch[f"{key}_y"] = batch[f"{key}_x"][..., :1].copy()
    batch["query_y"][0, 3, 0] = np.nan
    _refused(_maml(outputs=1), batch, tf.errors.InvalidArgumentError, "finite values in `query_y`")


def test_fit_stops_at_the_first_bad_meta_batch_before_updating():
    learner = _maml()
    bad = _batch()
    bad["query_x"][0, 0, 0] = np.nan
    stream = tf.data.Dataset.from_tensors(_batch()).concatenate(tf.data.Dataset.from_tensors(bad))
    learner.fit(stream.take(1), verbose=0)
    after_good_step = _state(learner)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Expected finite values in `query_x`"):
        learner.fit(stream.skip(1), verbose=0)
    for old, new in zip(after_good_step, _state(learner), strict=True):
        np.testing.assert_array_equal(old, new)


def test_fractional_float_labels_are_refused():
    batch = _batch(label_dtype=np.float32)
    batch["support_y"] = batch["support_y"] + 0.5
    _refused(_maml(), batch, ValueError, r"Expected integer class ids in `support_y`.*float32")


def test_class_ids_outside_the_models_classes_are_refused():
    batch = _batch()
    batch["query_y"][1, 0] = 3  # a 3-way model
    _refused(_maml(), batch, tf.errors.InvalidArgumentError, r"class ids in 0\.\.2 in `query_y`")
    batch = _batch()
    batch["support_y"][0, 0] = -1
    _refused(_maml(), batch, tf.errors.InvalidArgumentError, "class ids >= 0 in `support_y`")


def test_protonet_refuses_labels_outside_the_episodes_ways():
    batch = _batch()
    batch["query_y"][0, 0] = 7  # label 7 in a 3-way task used to make 8 prototypes
    _refused(_protonet(), batch, tf.errors.InvalidArgumentError, "a class the support set lacks")
    batch = _batch()
    batch["support_y"][1, 2] = 7
    _refused(_protonet(), batch, tf.errors.InvalidArgumentError, "misses a class id below")
    batch = _batch()
    batch["support_y"][0, 0] = -1
    _refused(_protonet(), batch, tf.errors.InvalidArgumentError, "class ids >= 0 in `support_y`")


def test_examples_of_another_shape_than_the_models_input_are_refused():
    _refused(
        _maml(shape=(8, 8, 1)),
        _batch(shape=(9, 9, 1)),
        ValueError,
        r"Expected `support_x` examples of the model's input shape \(8, 8, 1\)",
    )


def test_valid_meta_batches_still_train_and_evaluate():
    for learner in (_maml(), _protonet()):
        learner.train_on_batch(_batch())
        logs = learner.evaluate(tf.data.Dataset.from_tensors(_batch()), verbose=0, return_dict=True)
        assert np.isfinite(logs["loss"])


def test_class_ids_are_told_from_regression_targets_by_the_prediction_shape():
    ids, values = tf.zeros([2, 5], tf.int32), tf.zeros([2, 5, 1])
    assert episode_lib.class_count(ids, tf.TensorSpec([5, 3])) == 3
    assert episode_lib.class_count(ids, tf.TensorSpec([5, None])) is None
    assert episode_lib.class_count(values, tf.TensorSpec([5, 1])) is False
    assert episode_lib.class_count(tf.zeros([2, 5]), tf.TensorSpec([5, 1])) is False
    assert episode_lib.class_count(ids, None) is False
