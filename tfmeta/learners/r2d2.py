"""R2-D2 and LR-D2 (Bertinetto et al. 2019): a ridge- or logistic-regression head solved per task.

Both heads are solved in Woodbury (dual) form, so their cost grows with the
support size `S`, not the embedding size `D`: the ridge head in closed form,
the logistic head by a few Newton (IRLS) steps, each one `S x S` Cholesky
solve per class. Both are plain TF ops, differentiated through.
"""

from __future__ import annotations

import math
from typing import Callable

import keras
import tensorflow as tf

from tfmeta import query_statistics as query_statistics_lib
from tfmeta.argument_validation import check_choice, check_integer
from tfmeta.learners import support_set_classifier
from tfmeta.learners.n_way import flatten

RIDGE = "ridge"
LOGISTIC = "logistic"
HEADS = (RIDGE, LOGISTIC)
DEFAULT_NEWTON_STEPS = 5

# `solve(matrix, rhs)`: `x` with `matrix @ x = rhs` for symmetric positive definite
# `[..., n, n]` matrices and `[..., n, k]` right-hand sides.
Solver = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def cholesky_solve(matrix: tf.Tensor, rhs: tf.Tensor) -> tf.Tensor:
    """`matrix^-1 rhs` by a (batched) Cholesky factorization: the learner's `Solver`."""
    return tf.linalg.cholesky_solve(tf.linalg.cholesky(matrix), rhs)


def ridge_regression(
    features: tf.Tensor, targets: tf.Tensor, l2: tf.Tensor, solve: Solver = cholesky_solve
) -> tf.Tensor:
    """The ridge-regression weights `argmin_W |X W - Y|^2 + l2 |W|^2`, in Woodbury form.

    `W = X^T (X X^T + l2 I)^-1 Y`: one Cholesky solve of the support set's
    size `S` (not the feature size `D`), differentiable w.r.t. all inputs.

    Args:
        features: `X`, `[S, D]`.
        targets: `Y`, `[S, N]`.
        l2: the ridge penalty, a positive scalar.
        solve: the symmetric positive definite solver (the exporters pass one in
            TFLite builtin ops).

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
    dual = solve(gram, tf.cast(targets, features.dtype))
    return tf.matmul(features, dual, transpose_a=True)


def logistic_regression(
    features: tf.Tensor,
    targets: tf.Tensor,
    l2: tf.Tensor,
    steps: int,
    solve: Solver = cholesky_solve,
) -> tf.Tensor:
    """One-vs-rest L2-regularised logistic regression by `steps` Newton steps in Woodbury form.

    For each class (column `y` of `targets`), `w` approximates
    `argmin_w sum_i log(1 + exp(x_i w)) - y_i x_i w + l2/2 |w|^2`, starting
    from `w = 0`. Derivation: the gradient is `X^T (s - y) + l2 w` and the
    Hessian `X^T B X + l2 I`, with `s = sigmoid(X w)` and
    `B = diag(s (1 - s))`; IRLS is this Newton step, a weighted least-squares
    fit of the working response `z = X w + B^-1 (y - s)`. Both lie in the row
    space of `X`, so `w = X^T a` and, with `K = X X^T`, `X w = K a`. The
    push-through identity `(X^T B X + l2 I)^-1 X^T = X^T (B K + l2 I)^-1`
    turns the step into `da = (B K + l2 I)^-1 r`, `r = y - s - l2 a`, an
    `S x S` system (Bertinetto et al.'s `(K + l2 B^-1)^-1` form, without
    dividing by `B`, which vanishes for confident examples). Symmetrised with
    `M = B^1/2 K B^1/2 + l2 I` (positive definite, eigenvalues >= l2):
    `da = (r - B^1/2 M^-1 B^1/2 K r) / l2`. At the optimum `a = (y - s) / l2`.

    Args:
        features: `X`, `[S, D]`.
        targets: `Y` in {0, 1}, `[S, N]` (one-hot labels: one binary problem per class).
        l2: the penalty, a positive scalar.
        steps: the number of Newton steps, >= 1 (unrolled: differentiable
            w.r.t. all inputs, to any order).
        solve: the symmetric positive definite solver for the `[N, S, S]`
            systems (the exporters pass one in TFLite builtin ops).

    Returns:
        `W`, `[D, N]`: column `c` scores class `c` against the rest (logits).

    Example:

    ```python
    x = tf.random.normal([5, 64])
    w = tfmeta.learners.r2d2.logistic_regression(x, tf.eye(5), tf.constant(1.0), steps=5)
    ```
    """
    gram = tf.matmul(features, features, transpose_b=True)
    binary = tf.transpose(tf.cast(targets, features.dtype))  # [N, S]: one row per class
    l2 = tf.cast(l2, features.dtype)
    dual = tf.zeros_like(binary)
    for _ in range(steps):
        dual += _newton_step(gram, binary, dual, l2, solve)
    return tf.matmul(features, dual, transpose_a=True, transpose_b=True)


def _newton_step(gram, binary, dual, l2, solve):
    """`da` of one Newton step for each class's dual weights `a` (rows of `dual`, `[N, S]`)."""
    logits = tf.matmul(dual, gram)  # rows (K a)^T; K is symmetric
    residual = binary - tf.sigmoid(logits) - l2 * dual
    root = _sqrt_sigmoid_slope(logits)  # B^1/2 per class, [N, S]
    system = root[:, :, None] * gram * root[:, None, :] + l2 * tf.eye(
        tf.shape(gram)[0], dtype=gram.dtype)
    rhs = root * tf.matmul(residual, gram)
    return (residual - root * solve(system, rhs[:, :, None])[:, :, 0]) / l2


def _sqrt_sigmoid_slope(logits: tf.Tensor) -> tf.Tensor:
    """`sqrt(s (1 - s))`, `s = sigmoid(logits)`, as `e^(-|t|/2) / (1 + e^-|t|)`: no
    cancellation in `1 - s` and no square root (its gradient at 0), in builtin ops."""
    magnitude = tf.abs(logits)
    return tf.exp(-0.5 * magnitude) / (1.0 + tf.exp(-magnitude))


def fit_head(
    features: tf.Tensor,
    targets: tf.Tensor,
    l2: tf.Tensor,
    head: str = RIDGE,
    newton_steps: int | None = None,
    solve: Solver = cholesky_solve,
) -> tf.Tensor:
    """R2D2's head weights `[D, N]` from support `features` `[S, D]` (with the bias column)
    and one-hot `targets` `[S, N]`.

    Ridge: `ridge_regression` of both divided by `sqrt(S)` as in the authors'
    code, i.e. mean squared error plus `l2 |W|^2`. Logistic:
    `logistic_regression` of the mean log-loss plus `l2/2 |W|^2` (its penalty
    `S * l2`), so the penalty means the same for every support size in both.
    """
    examples = tf.cast(tf.shape(features)[0], features.dtype)
    if head == RIDGE:
        norm = tf.sqrt(examples)
        return ridge_regression(features / norm, targets / norm, l2, solve)
    return logistic_regression(features, targets, examples * tf.cast(l2, features.dtype),
                               newton_steps, solve)


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"Expected `{name}` to be a finite float > 0. Received: {name}={value!r}")
    return float(value)


def _finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Expected `{name}` to be a finite float. Received: {name}={value!r}")
    return float(value)


def _checked_head(head, newton_steps) -> tuple[str, int | None]:
    """`(head, newton_steps)`, the steps defaulted for the logistic head; bad values raise."""
    check_choice("head", head, HEADS)
    if head == RIDGE:
        if newton_steps is not None:
            raise ValueError(
                "Expected newton_steps=None with head='ridge' (solved in closed form; Newton "
                f"steps are the logistic head's). Received: newton_steps={newton_steps!r}")
        return head, None
    if newton_steps is None:
        return head, DEFAULT_NEWTON_STEPS
    return head, check_integer("newton_steps", newton_steps)


@keras.saving.register_keras_serializable(package="tfmeta")
class R2D2(support_set_classifier.SupportSetClassifier):
    """R2-D2 / LR-D2: a meta-learned embedding whose linear head is fitted to the support set
    by ridge or logistic regression.

    With `head="ridge"` (R2-D2), per task, the support embeddings `X` (with a
    column of ones for the bias) and one-hot labels `Y`, both divided by
    `sqrt(S)` as in the authors' code, are fitted by ridge regression in closed form
    (`ridge_regression`, Woodbury form: the cost grows with the support size
    S, not the embedding size). The query scores are
    `scale * [q, 1] W + bias`. The meta-gradient flows through the solve
    into the embedding, the ridge penalty and the scale and bias, which are
    meta-learned (`learn_l2=False` fixes the penalty). Compile with
    `SparseCategoricalCrossentropy(from_logits=True)`. Under that loss the
    bias, one number added to every class's score, leaves the softmax
    unchanged: its meta-gradient is exactly zero and it keeps its initial
    value. It is kept for the paper's adjust layer and for losses that read
    each score on its own (e.g. a sigmoid or squared-error loss on the scores).

    `head="logistic"` is the paper's LR-D2, here one-vs-rest: per class, a binary
    L2-regularised logistic regression of the support features (with the
    bias column) on the class's one-hot column, minimising the mean log-loss
    plus `lambda/2 |w|^2` by `newton_steps` Newton (IRLS) steps from zero, in
    Woodbury form (`logistic_regression`: one `S x S` Cholesky solve per
    class and step). The steps are unrolled and differentiated through; the
    query scores, scale, bias and penalty are as for the ridge head.

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
        l2: the initial penalty lambda (the authors' code, ridge head: 50).
        scale: the initial output scale alpha (the authors' Omniglot runs: 10).
        bias: the initial output bias beta.
        learn_l2: meta-learn lambda (as `log(lambda)`, so it stays positive).
        head: `"ridge"` (R2-D2, closed form) or `"logistic"` (LR-D2, Newton steps).
        newton_steps: the logistic head's Newton steps (default 5); None with
            the ridge head.
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
        head: str = RIDGE,
        newton_steps: int | None = None,
        **kwargs,
    ):
        super().__init__(model, ways=ways, query_statistics=query_statistics, **kwargs)
        self.head_kind, self.newton_steps = _checked_head(head, newton_steps)
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
        """The current penalty lambda."""
        return tf.exp(self.log_l2)

    def head(self, support, support_y, queries, ways, state, training):
        support, queries = _with_ones(flatten(support)), _with_ones(flatten(queries))
        targets = tf.one_hot(support_y, ways, dtype=support.dtype)
        weights = fit_head(support, targets, tf.exp(self.log_l2), self.head_kind,
                           self.newton_steps)
        return self.scale * tf.matmul(queries, weights) + self.bias, state

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(l2=self.initial_l2, scale=self.initial_scale, bias=self.initial_bias,
                      learn_l2=self.learn_l2, head=self.head_kind,
                      newton_steps=self.newton_steps)
        return config


def _constant(value: float):
    """An initializer of `value` in the variable's own dtype (Keras's `Constant` rounds
    through float32)."""
    return lambda shape, dtype: tf.constant(value, dtype, shape)


def _with_ones(features: tf.Tensor) -> tf.Tensor:
    """`[n, D]` features with a column of ones appended (the regression's bias)."""
    return tf.concat([features, tf.ones([tf.shape(features)[0], 1], features.dtype)], axis=1)
