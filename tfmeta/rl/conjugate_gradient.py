"""The conjugate-gradient method for `A x = b` with `A` given as a matrix-vector product."""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def conjugate_gradient(
    matvec: Callable[[tf.Tensor], tf.Tensor],
    b: tf.Tensor,
    iterations: int = 10,
    residual_tolerance: float = 1e-10,
) -> tf.Tensor:
    """Approximately solves `A x = b` for a symmetric positive-definite `A`.

    `A` is never formed: `matvec(v)` returns `A v` (in TRPO a Hessian-vector
    product of the KL divergence). The loop is a `tf.while_loop`, so it runs
    inside a compiled graph; it stops after `iterations` steps or once the
    squared residual norm falls below `residual_tolerance`.

    Args:
        matvec: `v -> A v` for vectors shaped like `b`.
        b: the right-hand side, a vector.
        iterations: the most conjugate-gradient steps.
        residual_tolerance: stop once `|b - A x|^2` is below it.

    Returns:
        `x`, shaped like `b`.

    Example:

    ```python
    import tensorflow as tf
    from tfmeta.rl.conjugate_gradient import conjugate_gradient

    a = tf.constant([[4.0, 1.0], [1.0, 3.0]])
    conjugate_gradient(lambda v: tf.linalg.matvec(a, v), tf.constant([1.0, 2.0]))  # [0.09, 0.64]
    ```
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"Expected `iterations` >= 1. Received: iterations={iterations!r}")
    x = tf.zeros_like(b)
    residual = tf.identity(b)
    direction = tf.identity(b)
    residual_norm = tf.reduce_sum(tf.square(residual))

    def keep_going(step, x, residual, direction, residual_norm):
        return tf.logical_and(step < iterations, residual_norm >= residual_tolerance)

    def body(step, x, residual, direction, residual_norm):
        product = matvec(direction)
        alpha = residual_norm / tf.reduce_sum(direction * product)
        x = x + alpha * direction
        residual = residual - alpha * product
        new_norm = tf.reduce_sum(tf.square(residual))
        direction = residual + (new_norm / residual_norm) * direction
        return step + 1, x, residual, direction, new_norm

    _, x, _, _, _ = tf.while_loop(
        keep_going, body, (tf.constant(0), x, residual, direction, residual_norm)
    )
    return x
