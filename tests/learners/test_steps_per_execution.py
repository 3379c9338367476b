"""Several meta-updates per call into TensorFlow (Keras's `steps_per_execution`) make the
same updates as one per call, to the bit: a meta-step keeps all of its state (weights,
optimizer slots, seed streams, carried inner moments) in variables, none in Python."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from learner_testing import conv4_paper_reptile


def _reptile() -> tfmeta.Reptile:
    """The paper command's kind of Reptile (seeded minibatches, carried moments), its
    training queries unscored as in the benchmark."""
    return conv4_paper_reptile(score_training_queries=False)


def _maml() -> tfmeta.MAML:
    return tfmeta.MAML(tfmeta.models.conv4((28, 28, 1), num_classes=5, filters=8),
                       inner_learning_rate=0.1, inner_steps=2)


def _trained(make, steps_per_execution: int, batches: list[dict], epochs: int):
    keras.utils.set_random_seed(0)
    learner = make()
    learner.compile(optimizer=keras.optimizers.Adam(1e-2),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"], steps_per_execution=steps_per_execution)
    data = tf.data.Dataset.from_tensor_slices(
        {key: tf.stack([batch[key] for batch in batches]) for key in batches[0]}).repeat()
    history = learner.fit(data, steps_per_epoch=len(batches), epochs=epochs, verbose=0)
    return learner, history.history


@pytest.mark.parametrize("make", [_reptile, _maml], ids=["reptile", "maml"])
def test_several_meta_updates_per_call_equal_one_per_call(make, omniglot_like_batch):
    batches = [omniglot_like_batch(tasks=2, shots=2, seed=seed) for seed in range(4)]
    one, one_logs = _trained(make, 1, batches, epochs=2)
    four, four_logs = _trained(make, 4, batches, epochs=2)
    assert int(one.optimizer.iterations) == int(four.optimizer.iterations) == 8
    for got, want in zip(four.variables, one.variables):  # weights, slots, seeds, moments
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
    assert list(four_logs) == list(one_logs)
    for name in one_logs:
        np.testing.assert_allclose(four_logs[name], one_logs[name], rtol=1e-5)
