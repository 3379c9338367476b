"""Learner fixtures: the real Omniglot, and a short 5-way 1-shot train-and-evaluate run."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import evaluation

WAYS, SHOTS, QUERIES = 5, 1, 5
TEST_EPISODES = 100


@pytest.fixture(scope="session")
def omniglot(omniglot_vinyals) -> dict[str, tfmeta.data.FewShotEpisodes]:
    """The standard (Vinyals) Omniglot splits with rotations, 28x28."""
    return omniglot_vinyals


@pytest.fixture(scope="session")
def omniglot_5way_1shot(omniglot):
    """`run(learner, iterations, ...)`: meta-trains on 5-way episodes, scores held-out classes.

    Returns `tfmeta.evaluation.evaluate_episodes` on 100 test episodes
    (5-way 1-shot, 5 queries per class) of characters never seen in training.
    """

    def run(learner, iterations, optimizer, train_ways=WAYS, train_shots=SHOTS, meta_batch_size=8):
        learner.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        if iterations:
            train = omniglot["train"].episodes(
                train_ways, train_shots, QUERIES, meta_batch_size=meta_batch_size, seed=0
            )
            learner.fit(train, steps_per_epoch=iterations, verbose=0)
        test = omniglot["test"].episodes(
            WAYS, SHOTS, QUERIES, meta_batch_size=25, num_episodes=TEST_EPISODES, seed=1
        )
        return evaluation.evaluate_episodes(learner, test, num_episodes=TEST_EPISODES)

    return run


@pytest.fixture(scope="session")
def omniglot_like_batch():
    """`make(tasks, ways, shots, queries, seed)`: a meta-batch of random 28x28x1 images.

    Shaped like Omniglot episodes (labels `0..ways-1` grouped by class), for
    the math checks that need no real data.
    """

    def make(tasks=2, ways=5, shots=1, queries=3, seed=0):
        generator = tf.random.Generator.from_seed(seed)

        def labels(per_class):
            return tf.tile(tf.repeat(tf.range(ways), per_class)[tf.newaxis], [tasks, 1])

        return {
            "support_x": generator.uniform((tasks, ways * shots, 28, 28, 1)),
            "support_y": labels(shots),
            "query_x": generator.uniform((tasks, ways * queries, 28, 28, 1)),
            "query_y": labels(queries),
        }

    return make
