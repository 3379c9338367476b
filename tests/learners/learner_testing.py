"""Helpers shared by the learner tests: a tiny float64 network and sinusoid meta-batches."""

import keras
import tensorflow as tf

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
