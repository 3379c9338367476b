"""R2-D2 (Bertinetto et al. 2019): a ridge-regression head solved in closed form per task."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfmeta import query_statistics as query_statistics_lib
from tfmeta.learners import support_set_classifier
from tfmeta.learners.n_way import flatten


def ridge_regression(features: tf.Tensor, targets: tf.Tensor, l2: tf.Tensor) -> tf.Tensor:
    """The ridge-regression weights `argmin_W |X W - Y|^2 + l2 |W|^2`, in Woodbury form.

    `W = X^T (X X^T + l2 I)^-1 Y`: one Cholesky solve of the support set's
    size `S` (not the feature size `D`), differentiable w.r.t. all inputs.

    Args:
        features: `X`, `[S, D]`.
        targets: `Y`, `[S, N]`.
        l2: the ridge penalty, a positive scalar.

    Returns:
        `W`, `[D, N]`.

    Example:

    ```python
    x = tf.random.normal([5, 64])
    w = tfmeta.learners.r2d2.ridge_regression(x, tf.eye(5), tf.constant(1.0))  # [64, 5]
    ```
    """
    gram = tf.matmul(features, features, transpose_b=True)
    gram += tf.cast(l2, features.dtype) * tf.eye(tf.shape(features)[0], dtype=features.dtype)
    dual = tf.linalg.cholesky_solve(tf.linalg.cholesky(gram), tf.cast(targets, features.dtype))
    return tf.matmul(features, dual, transpose_a=True)


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"Expected `{name}` to be a finite float > 0. Received: {name}={value!r}")
    return float(value)


def _finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Expected `{name}` to be a finite float. Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="tfmeta")
class R2D2(support_set_classifier.SupportSetClassifier):
    """R2-D2: a meta-learned embedding whose linear head is ridge regression on the support set.

    Per task, the support embeddings `X` (with a column of ones for the
    bias) and one-hot labels `Y`, both divided by `sqrt(S)` as in the
    authors' code, are fitted by ridge regression in closed form
    (`ridge_regression`, Woodbury form: the cost grows with the support size
    S, not the embedding size). The query scores are
    `scale * [q, 1] W + bias`. The meta-gradient flows through the solve
    into the embedding, the ridge penalty and the scale and bias, which are
    meta-learned (`learn_l2=False` fixes the penalty). Compile with
    `SparseCategoricalCrossentropy(from_logits=True)`.

    Padded episodes (`tfmeta.data.variable_episodes`) need `ways=N`, N at
    least their largest way count: the regression fits the real support
    examples on the episode's own classes (`S` and the one-hot targets as in
    the unpadded episode), and the other classes score -1e30
    (`SupportSetClassifier`).

    Args:
        model: a built Keras model mapping inputs to embeddings (any rank:
            flattened), e.g. `tfmeta.models.conv4(num_classes=None)`.
        ways: the classes of every episode, or None (per episode); padded episodes
            need N.
        l2: the initial ridge penalty lambda (the authors' code: 50).
        scale: the initial output scale alpha (the authors' Omniglot runs: 10).
        bias: the initial output bias beta.
        learn_l2: meta-learn lambda (as `log(lambda)`, so it stays positive).
        query_statistics: see `tfmeta.learners.support_set_classifier`.
        **kwargs: forwarded to `tfmeta.MetaLearner`.

    Example:

    ```python
    import keras, tfmeta
    r2d2 = tfmeta.R2D2(tfmeta.models.conv4((28, 28, 1), num_classes=None), ways=5)
    r2d2.compile(optimizer=keras.optimizers.Adam(5e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
    sources = tfmeta.data.omniglot("path/to/omniglot.tar.gz")
    r2d2.fit(sources["train"].episodes(ways=5, shots=1, queries=15, meta_batch_size=8,
                                       seed=0), steps_per_epoch=500)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        ways: int | None = None,
        l2: float = 50.0,
        scale: float = 10.0,
        bias: float = 0.0,
        learn_l2: bool = True,
        query_statistics: str = query_statistics_lib.MOVING,
        **kwargs,
    ):
        super().__init__(model, ways=ways, query_statistics=query_statistics, **kwargs)
        self.initial_l2 = _positive("l2", l2)
        self.initial_scale = _finite("scale", scale)
        self.initial_bias = _finite("bias", bias)
        if not isinstance(learn_l2, bool):
            raise ValueError(f"Expected `learn_l2` to be a bool. Received: learn_l2={learn_l2!r}")
        self.learn_l2 = learn_l2
        dtype = model.outputs[0].dtype if hasattr(model, "outputs") else "float32"
        self.log_l2 = self.add_weight(
            shape=(), dtype=dtype, initializer=_constant(math.log(l2)), trainable=learn_l2,
            name="log_l2",
        )
        self.scale = self.add_weight(shape=(), dtype=dtype, initializer=_constant(scale),
                                     name="scale")
        self.bias = self.add_weight(shape=(), dtype=dtype, initializer=_constant(bias),
                                    name="bias")

    @property
    def meta_variables(self) -> list:
        """The embedding's trainable weights, then scale, bias and (if learned) log(lambda)."""
        own = [self.scale, self.bias] + ([self.log_l2] if self.learn_l2 else [])
        return list(self.model.trainable_variables) + own

    @property
    def l2(self) -> tf.Tensor:
        """The current ridge penalty lambda."""
        return tf.exp(self.log_l2)

    def head(self, support, support_y, queries, ways, state, training):
        support, queries = _with_ones(flatten(support)), _with_ones(flatten(queries))
        norm = tf.sqrt(tf.cast(tf.shape(support)[0], support.dtype))
        targets = tf.one_hot(support_y, ways, dtype=support.dtype)
        weights = ridge_regression(support / norm, targets / norm, tf.exp(self.log_l2))
        return self.scale * tf.matmul(queries, weights) + self.bias, state

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(l2=self.initial_l2, scale=self.initial_scale, bias=self.initial_bias,
                      learn_l2=self.learn_l2)
        return config


def _constant(value: float):
    """An initializer of `value` in the variable's own dtype (Keras's `Constant` rounds
    through float32)."""
    return lambda shape, dtype: tf.constant(value, dtype, shape)


def _with_ones(features: tf.Tensor) -> tf.Tensor:
    """`[n, D]` features with a column of ones appended (the regression's bias)."""
    return tf.concat([features, tf.ones([tf.shape(features)[0], 1], features.dtype)], axis=1)
