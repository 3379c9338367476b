"""Helpers shared by the learner tests: a tiny float64 network, sinusoid meta-batches and the
Reptile of the paper's command on a small Conv-4."""

import keras
import tensorflow as tf

import tfmeta
from tfmeta.data import SinusoidTasks


def tiny_model(seed=0):
    """A float64 MLP 1-8-1 with tanh, whose second derivatives are not zero."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((1,), dtype="float64"),
            keras.layers.Dense(8, activation="tanh", dtype="float64"),
            keras.layers.Dense(1, dtype="float64"),
        ]
    )


def sinusoid_batch(tasks=3, shots=5, seed=0):
    """One float64 sinusoid meta-batch of `tasks` tasks with `shots` support and query points."""
    tasks_source = SinusoidTasks(dtype=tf.float64)
    episodes = tasks_source.episodes(shots, shots, meta_batch_size=tasks, seed=seed)
    return next(iter(episodes))


def conv4_paper_reptile(score_training_queries: bool = True) -> tfmeta.Reptile:
    """The paper command's kind of Reptile, uncompiled: Adam inner steps (beta1 = 0) on
    minibatches drawn from a seeded stream, second moments carried from task to task, on a
    small Conv-4 with BatchNorm whose query pass uses the support set's statistics."""
    return tfmeta.Reptile(
        tfmeta.models.conv4((28, 28, 1), num_classes=5, filters=8), inner_optimizer="adam",
        inner_learning_rate=0.001, inner_steps=3, inner_batch_size=5, carry_inner_moments=True,
        seed=1, score_training_queries=score_training_queries)
