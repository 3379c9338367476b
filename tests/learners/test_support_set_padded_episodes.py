"""R2-D2 (ridge and logistic heads), Matching and Relation Networks on padded variable-way,
variable-shot episodes: the unpadded results, absent classes at -1e30 without NaN, one trace for
every episode shape."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta

from padded_episodes_testing import CONFIG, embedding, padded_batch, toy_source, unpadded

CLASSES = {"r2d2": tfmeta.R2D2, "r2d2_logistic": tfmeta.R2D2,
           "matching": tfmeta.MatchingNetworks, "relation": tfmeta.RelationNetwork}
OPTIONS = {"r2d2_logistic": dict(head="logistic")}
# float32 sums in another order (real rows gathered, a Cholesky solve of another size).
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


def map_embedding(seed=0):
    """Conv -> BatchNorm -> ReLU feature maps `[4, 4, 4]` of the toy 6x6 images (Relation)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3),
                             keras.layers.BatchNormalization(), keras.layers.ReLU()])


def make(kind, ways, query_statistics="moving", cls=None):
    """A compiled learner of `kind` (or its subclass `cls`) over a small BatchNorm embedding."""
    cls = cls or CLASSES[kind]
    if kind == "relation":
        module = tfmeta.models.relation_module((4, 4, 4), filters=4, hidden_units=4)
        learner = cls(map_embedding(), module, ways=ways, query_statistics=query_statistics)
        loss = tfmeta.losses.OneHotMeanSquaredError()
    else:
        learner = cls(embedding(), ways=ways, query_statistics=query_statistics,
                      **OPTIONS.get(kind, {}))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, metrics=["accuracy"])
    return learner


def twins(kind, query_statistics="moving"):
    """`(ways=max_ways, ways=None)` learners with the same weights."""
    padded = make(kind, CONFIG.max_ways, query_statistics=query_statistics)
    plain = make(kind, None, query_statistics=query_statistics)
    plain.set_weights(padded.get_weights())
    return padded, plain


def one_task(batch, task):
    return {key: value[task : task + 1] for key, value in batch.items()}


@pytest.mark.parametrize("kind,query_statistics", [
    ("r2d2", "moving"), ("r2d2_logistic", "moving"), ("matching", "moving"),
    ("relation", "moving"), ("relation", "support"),
])
def test_padded_predictions_and_losses_equal_the_unpadded_episodes(kind, query_statistics):
    batch = padded_batch()
    assert len(set(batch["ways"].numpy())) > 1  # the meta-batch mixes way counts
    padded, plain = twins(kind, query_statistics)
    scores = padded.predict_on_batch(batch)
    losses = padded.query_scores(padded.checked_episodes(batch))["loss"]
    for task in range(len(scores)):
        episode = unpadded(batch, task)
        ways = int(batch["ways"][task])
        query = batch["query_mask"][task].numpy()
        expected = plain.predict_on_batch(episode)[0]
        np.testing.assert_allclose(scores[task][query][:, :ways], expected, **TOLERANCE)
        assert np.all(scores[task][query][:, ways:] < -1e29)
        assert not scores[task][~query].any()
        expected_loss = plain.query_scores(plain.checked_episodes(episode))["loss"][0]
        np.testing.assert_allclose(losses[task], expected_loss, **TOLERANCE)
    # Meta-training: batch statistics (the relation module's too) and meta-gradients.
    loss, grads, _, state = padded.compute_meta_gradients(one_task(batch, 0))
    loss_plain, grads_plain, _, state_plain = plain.compute_meta_gradients(unpadded(batch, 0))
    np.testing.assert_allclose(loss, loss_plain, **TOLERANCE)
    for value, expected in zip(grads + state, grads_plain + state_plain):
        np.testing.assert_allclose(value, expected, **TOLERANCE)


def without_support_of_class(batch, task, label):
    """`batch` whose task `task` has no real support example of class `label`."""
    drop = (batch["support_y"][task] == label)[tf.newaxis]
    tasks = tf.range(tf.shape(batch["support_mask"])[0])[:, tf.newaxis] == task
    return {**batch, "support_mask": batch["support_mask"] & ~(drop & tasks)}


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_a_class_without_support_examples_scores_absent_and_keeps_gradients_finite(kind):
    batch = without_support_of_class(one_task(padded_batch(tasks=1), 0), 0, label=1)
    learner = make(kind, CONFIG.max_ways)
    scores = learner.predict_on_batch(batch)[0][batch["query_mask"][0].numpy()]
    np.testing.assert_array_equal(scores[:, 1], np.float32(-1e30))
    assert np.all(np.isfinite(np.delete(scores, 1, axis=1)))
    loss, grads, _, state = learner.compute_meta_gradients(batch)
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(value)) for value in grads + state)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_training_on_episodes_of_many_shapes_traces_once(kind):
    traces = []

    class Counting(CLASSES[kind]):
        def adapt_and_predict(self, task, state, training):
            if training:
                traces.append(1)
            return super().adapt_and_predict(task, state, training)

    data = tfmeta.data.variable_episodes(toy_source(), CONFIG, meta_batch_size=2, seed=0)
    assert len({tuple(b["ways"].numpy()) for b in data.take(6)}) > 3
    learner = make(kind, CONFIG.max_ways, cls=Counting)
    learner.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    first = len(traces)  # Keras's first step (one trace, or two with its build)
    learner.fit(data.skip(1), steps_per_epoch=6, epochs=1, verbose=0)
    assert 0 < len(traces) == first <= 2


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_padded_episodes_without_ways_raise_one_clear_error(kind):
    learner = make(kind, None)
    name = type(learner).__name__
    with pytest.raises(ValueError, match=f"Expected {name}\\(ways=N\\) for padded episodes"):
        learner.train_on_batch(padded_batch(tasks=2))
