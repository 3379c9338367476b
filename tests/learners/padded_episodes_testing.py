"""Helpers shared by the tests of learners on padded variable episodes: toy data, a small
BatchNorm embedding, one-task views without padding."""

import keras
import numpy as np
import tensorflow as tf

import tfmeta

CONFIG = tfmeta.data.VariableEpisodeConfig(
    min_ways=2, max_ways=6, max_support_size=24, max_support_per_class=5, max_query_per_class=3
)


def toy_source(num_classes=10, per_class=12, size=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, [num_classes * per_class, size, size, 1], np.uint8)
    labels = np.repeat(np.arange(num_classes), per_class)
    return tfmeta.data.FewShotEpisodes.from_arrays(images, labels)


def embedding(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(4, 3),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
    ])


def compiled(learner, optimizer=None):
    learner.compile(optimizer=optimizer or keras.optimizers.SGD(0.1),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    return learner


def padded_batch(tasks=4, seed=0):
    data = tfmeta.data.variable_episodes(toy_source(), CONFIG, meta_batch_size=tasks, seed=seed)
    return next(iter(data))


def unpadded(batch, task):
    """Task `task` of a padded meta-batch as a one-task batch without padding."""
    support = batch["support_mask"][task]
    query = batch["query_mask"][task]
    return {
        "support_x": batch["support_x"][task][support][tf.newaxis],
        "support_y": batch["support_y"][task][support][tf.newaxis],
        "query_x": batch["query_x"][task][query][tf.newaxis],
        "query_y": batch["query_y"][task][query][tf.newaxis],
    }
