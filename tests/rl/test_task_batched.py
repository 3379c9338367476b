import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import random_batch, tiny_policy
from tfmeta import adaptation
from tfmeta.rl import policy_gradient
from tfmeta.rl.distributions import DiagonalGaussian
from tfmeta.rl.task_batched import TaskBatchedModel


def _per_task_params(policy, tasks):
    base, _ = adaptation.initial_weights(policy)
    return [tf.stack([p * (1.0 + 0.1 * i) for i in range(tasks)]) for p in base]


def test_each_task_runs_with_its_own_weights():
    policy = tiny_policy()
    batched = TaskBatchedModel(policy)
    params = _per_task_params(policy, 3)
    inputs = tf.random.stateless_normal([3, 4, 5, 2], [0, 1], dtype=tf.float64)
    outputs, _ = batched.stateless_call(params, [], inputs)
    for task in range(3):
        expected, _ = policy.stateless_call(
            [p[task] for p in params], [], tf.reshape(inputs[task], [-1, 2])
        )
        np.testing.assert_allclose(outputs[task], tf.reshape(expected, [4, 5, 4]), rtol=1e-12)


def test_one_adaptation_step_equals_a_separate_step_per_task():
    policy = tiny_policy()
    batched = TaskBatchedModel(policy)
    batch = random_batch(tasks=3)
    params = _per_task_params(policy, 3)
    loss = policy_gradient.inner_loss(DiagonalGaussian(2))
    adapted, _ = adaptation.gradient_step(
        batched,
        loss,
        params,
        [],
        batch.observations,
        batch.targets,
        learning_rates=[0.3] * len(params),
    )
    for task in range(3):

        def task_loss(targets, outputs):
            return loss(targets, tf.reshape(outputs, [1, 2, 4, 4]))

        def one(t):
            return t[task : task + 1]

        expected, _ = adaptation.gradient_step(
            policy,
            task_loss,
            [p[task] for p in params],
            [],
            tf.reshape(batch.observations[task], [-1, 2]),
            tuple(one(t) for t in batch.targets),
            learning_rates=[0.3] * len(params),
        )
        for got, want in zip(adapted, expected):
            np.testing.assert_allclose(got[task], want, rtol=1e-10, atol=1e-12)


def test_rejects_models_with_non_trainable_state():
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(4),
        ]
    )
    with pytest.raises(ValueError, match="non-trainable state"):
        TaskBatchedModel(model)
