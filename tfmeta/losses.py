"""Task losses of the learners whose predictions are not logits or point estimates.

- `OneHotMeanSquaredError`: Relation Networks' loss, the squared error of
  class scores against the one-hot labels.
- `GaussianNegativeLogLikelihood`: the Conditional Neural Process loss, the
  negative log-density of the targets under a predicted mean and standard
  deviation.
- `predictive_mean_squared_error`: the squared error of that predicted mean,
  a metric comparable with the point-estimate learners' `mse`.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfmeta.learners.padded_episodes import ABSENT_CLASS_LOGIT


@keras.saving.register_keras_serializable(package="tfmeta")
class OneHotMeanSquaredError(keras.losses.Loss):
    """Mean squared error between class scores `[..., N]` and one-hot integer labels `[...]`.

    Relation Networks (Sung et al. 2018) regress each relation score to 1 for
    the query's class and 0 for the others. Classes scored
    `ABSENT_CLASS_LOGIT` (without support examples, as in padded episodes)
    are left out of the mean, so the loss is that of the episode's own classes.

    Example:

    ```python
    loss = tfmeta.losses.OneHotMeanSquaredError()
    loss(tf.constant([0, 1]), tf.constant([[0.9, 0.2], [0.1, 0.7]]))  # 0.0375
    ```
    """

    def __init__(self, name: str = "one_hot_mean_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        targets = tf.one_hot(labels, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        scored = y_pred > tf.cast(ABSENT_CLASS_LOGIT, y_pred.dtype)
        # Zero, not the huge difference, where a class is absent: no overflow, no gradient.
        errors = tf.where(scored, y_pred - targets, tf.zeros_like(y_pred))
        count = tf.reduce_sum(tf.cast(scored, y_pred.dtype), axis=-1)
        return tf.reduce_sum(tf.square(errors), axis=-1) / tf.maximum(count, 1)


@keras.saving.register_keras_serializable(package="tfmeta")
class GaussianNegativeLogLikelihood(keras.losses.Loss):
    """`-log N(y; mean, stddev^2)` per example, for predictions `[..., D, 2]` = (mean, stddev).

    The last axis of the predictions holds the mean and the (positive)
    standard deviation of each target dimension; the loss sums over the D
    dimensions of an example.

    Example:

    ```python
    loss = tfmeta.losses.GaussianNegativeLogLikelihood()
    loss(tf.zeros([3, 1]), tf.stack([tf.zeros([3, 1]), tf.ones([3, 1])], -1))  # 0.919
    ```
    """

    def __init__(self, name: str = "gaussian_negative_log_likelihood", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        mean, stddev = y_pred[..., 0], y_pred[..., 1]
        y_true = tf.cast(tf.reshape(y_true, tf.shape(mean)), y_pred.dtype)
        per_dimension = (0.5 * tf.square((y_true - mean) / stddev) + tf.math.log(stddev)
                         + 0.5 * math.log(2 * math.pi))
        return tf.reduce_sum(per_dimension, axis=-1)


@keras.saving.register_keras_serializable(package="tfmeta")
def predictive_mean_squared_error(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """The squared error of the predicted mean, per example, for predictions `[..., D, 2]`.

    Averaged over the D target dimensions; the standard deviation is ignored.
    As a metric it puts a CNP beside learners that predict point estimates
    (their `mse`).

    Example:

    ```python
    tfmeta.losses.predictive_mean_squared_error(
        tf.ones([3, 1]), tf.stack([tf.zeros([3, 1]), tf.ones([3, 1])], -1))  # [1., 1., 1.]
    ```
    """
    y_pred = tf.convert_to_tensor(y_pred)
    mean = y_pred[..., 0]
    y_true = tf.cast(tf.reshape(y_true, tf.shape(mean)), y_pred.dtype)
    return tf.reduce_mean(tf.square(y_true - mean), axis=-1)
