"""Shared by the query-statistics and normalisation-layer tests: a compiled MAML, its evaluation
predictions, its meta-gradients beside finite differences, and BatchNorm with pooled moments
computed by hand in numpy."""

import keras
import numpy as np
import tensorflow as tf

import finite_differences
import tfmeta

CROSS_ENTROPY = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def maml(model, **kwargs):
    learner = tfmeta.MAML(model, inner_learning_rate=0.3, inner_steps=2, **kwargs)
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=CROSS_ENTROPY)
    return learner


def predict(learner, task):
    predictions, _ = learner.adapt_and_predict(
        {k: tf.constant(v) for k, v in task.items()}, learner.read_state(), training=False
    )
    return predictions.numpy()


def meta_gradients_and_finite_differences(learner, task):
    """`(variables, meta-gradients, their finite differences)` of a float64 learner's meta-loss
    on a meta-batch of `task` and `task` with its rows reversed."""
    batch = {k: tf.constant(np.stack([v, v[::-1].copy()])) for k, v in task.items()}
    _, grads, _, _ = learner.compute_meta_gradients(batch)
    variables = learner.model.trainable_variables
    traced = tf.function(lambda: learner.compute_meta_gradients(batch)[0])
    return variables, grads, finite_differences.gradients(lambda: float(traced()), variables)


def pooled_batch_norm(features, mean, variance, alpha, gamma, beta, epsilon):
    """NHWC `features` normalised with context moments `(mean, variance)` pooled with each
    example's own spatial moments (weights `alpha` and `1 - alpha`), then `gamma`, `beta`."""
    own_mean = features.mean(axis=(1, 2), keepdims=True)
    own_variance = features.var(axis=(1, 2), keepdims=True)
    pooled_mean = alpha * mean + (1 - alpha) * own_mean
    pooled_variance = (alpha * (variance + (mean - pooled_mean) ** 2)
                       + (1 - alpha) * (own_variance + (own_mean - pooled_mean) ** 2))
    return (features - pooled_mean) / np.sqrt(pooled_variance + epsilon) * gamma + beta
