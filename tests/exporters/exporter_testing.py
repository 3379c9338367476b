"""Helpers of the exporter tests: small seeded learners, episodes, the learner's predictions."""

from __future__ import annotations

import keras
import numpy as np

import tfmeta

CROSS_ENTROPY = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
WAYS, SHOTS, QUERIES = 5, 1, 5


def compiled(learner, loss=CROSS_ENTROPY):
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    return learner


def conv4_maml(eval_inner_steps=5, query_statistics="support", seed=0):
    """Conv-4 (Omniglot layout: stride-2 convs, BatchNorm, ReLU, mean pool), fewer filters."""
    keras.utils.set_random_seed(seed)
    net = tfmeta.models.conv4((28, 28, 1), num_classes=WAYS, filters=16)
    return compiled(tfmeta.MAML(net, inner_learning_rate=0.1, eval_inner_steps=eval_inner_steps,
                                query_statistics=query_statistics))


def mlp_maml(eval_inner_steps=5, seed=0):
    """A 5-way classifier MLP over 20 features."""
    keras.utils.set_random_seed(seed)
    net = tfmeta.models.mlp(input_dim=20, hidden_units=(32, 32), output_dim=WAYS)
    return compiled(tfmeta.MAML(net, inner_learning_rate=0.3, eval_inner_steps=eval_inner_steps))


def episode(input_shape, ways=WAYS, shots=SHOTS, queries=QUERIES, seed=1):
    rng = np.random.default_rng(seed)
    return {
        "support_x": rng.standard_normal((ways * shots, *input_shape)).astype(np.float32),
        "support_y": np.tile(np.arange(ways, dtype=np.int32), shots),
        "query_x": rng.standard_normal((queries, *input_shape)).astype(np.float32),
    }


def learner_predict(learner, task):
    """`learner.predict` on one episode (adds and removes the task axis)."""
    batch = {key: value[None] for key, value in task.items()}
    batch["query_y"] = np.zeros((1, len(task["query_x"])), np.int32)
    return learner.predict(batch, verbose=0)[0]
