"""The PyTorch reference of benchmarks/throughput.py computes tfmeta's MAML meta-gradient.

A same-run speed ratio is only honest if both sides compute the same thing: on the same
weights and episode, in float64, the reference's one-task meta-gradient (second and first
order) must equal `tfmeta.MAML`'s with transductive query statistics (learn2learn's
convention, which the benchmark times). The reference pads as TensorFlow does here (learn2learn
pads symmetrically, which costs the same and shifts the sampling grid) and uses Keras's
BatchNorm epsilon.
"""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import reference_maml_torch as reference  # noqa: E402

WAYS, QUERIES = 5, 2


def episode(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(WAYS)
    return {"support_x": rng.random((WAYS, 28, 28, 1)), "support_y": labels,
            "query_x": rng.random((WAYS * QUERIES, 28, 28, 1)),
            "query_y": np.repeat(labels, QUERIES)}


def keras_weights(torch_weights):
    """The reference's weights in Keras's layouts (HWIO kernels, `[in, out]` head)."""
    arrays = [w.detach().numpy() for w in torch_weights]
    for block in range(reference.BLOCKS):
        arrays[4 * block] = arrays[4 * block].transpose(2, 3, 1, 0)
    arrays[-2] = arrays[-2].T
    return arrays


@pytest.mark.parametrize("first_order", [False, True], ids=["second_order", "first_order"])
def test_reference_meta_gradient_equals_tfmeta_maml(float64, first_order):
    weights = reference.init_weights(dtype=torch.float64, seed=1)
    task = episode()
    model = tfmeta.models.conv4((28, 28, 1), WAYS)
    for variable, value in zip(model.trainable_variables, keras_weights(weights)):
        variable.assign(value)
    learner = tfmeta.MAML(model, inner_learning_rate=reference.INNER_LEARNING_RATE,
                          inner_steps=1, first_order=first_order,
                          query_statistics="transductive")
    learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = {key: tf.constant(value[None]) for key, value in task.items()}
    tf_loss, tf_grads, _, _ = learner.compute_meta_gradients(batch)

    torch_task = {key: torch.from_numpy(value if key.endswith("y") else value.transpose(0, 3, 1, 2))
                  for key, value in task.items()}
    loss, _ = reference.task_query_loss(weights, torch_task, first_order=first_order,
                                        padding="same", epsilon=1e-3)
    torch_grads = torch.autograd.grad(loss, weights)

    np.testing.assert_allclose(float(tf_loss), loss.item(), rtol=1e-10)
    for got, want, variable in zip(tf_grads, keras_weights(torch_grads), model.trainable_variables):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-7, atol=1e-10, err_msg=variable.path)


def test_reference_accuracy_equals_tfmeta_evaluation_task_by_task(float64):
    """benchmarks/time_to_accuracy.py scores both sides on one set of test episodes: the
    reference's per-task accuracy after its inner step must be tfmeta MAML's."""
    weights = reference.init_weights(dtype=torch.float64, seed=2)
    tasks = [episode(seed) for seed in range(4)]
    batch = {key: np.stack([task[key] for task in tasks]) for key in tasks[0]}
    model = tfmeta.models.conv4((28, 28, 1), WAYS)
    for variable, value in zip(model.trainable_variables, keras_weights(weights)):
        variable.assign(value)
    learner = tfmeta.MAML(model, inner_learning_rate=reference.INNER_LEARNING_RATE,
                          inner_steps=1, query_statistics="transductive")
    learner.compile(optimizer="adam",
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits = learner.predict_on_batch({key: tf.constant(value) for key, value in batch.items()})
    want = (np.argmax(logits, axis=-1) == batch["query_y"]).mean(axis=1)

    torch_tasks = reference.tasks_from_meta_batch(batch)
    got = reference.accuracy(weights, torch_tasks, padding="same", epsilon=1e-3)

    assert torch_tasks[1]["query_x"].shape == (WAYS * QUERIES, 1, 28, 28)
    assert torch_tasks[1]["support_y"].dtype == torch.int64
    np.testing.assert_array_equal(torch_tasks[1]["query_x"].numpy()[3, 0],
                                  batch["query_x"][1, 3, ..., 0])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # float32 means of hits
    assert len(set(np.round(want, 6))) > 1  # tasks told apart, not one constant accuracy
