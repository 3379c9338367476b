"""Linear solves in TFLite builtin ops, for models whose adaptation solves a small system.

LiteRT has no builtin Cholesky or triangular-solve kernel (TF's `Cholesky`
and `MatrixTriangularSolve` need the Flex delegate). For a system whose size
is fixed at export (R2-D2's `S x S` support-set Gram matrix, `S = ways *
shots`), the factorization and both substitutions unroll into `S` steps of
slices, matrix products, a square root and a division each. Leading batch
dimensions are solved in the same steps (LR-D2's systems, one per class).
"""

from __future__ import annotations

import tensorflow as tf


def _static_size(matrix: tf.Tensor) -> int:
    rank = matrix.shape.rank
    size = matrix.shape[-1] if rank else None
    if rank is None or rank < 2 or size is None or matrix.shape[-2] != size:
        raise ValueError(
            f"Expected a square matrix of static size. Received: shape {matrix.shape}"
        )
    return int(size)


def cholesky(matrix: tf.Tensor) -> tf.Tensor:
    """The lower-triangular `L` with `L L^T = matrix`, for symmetric positive definite
    `[..., n, n]` matrices of static `n`, column by column."""
    size = _static_size(matrix)
    columns: list[tf.Tensor] = []  # L's columns, each [..., n], zero above the diagonal
    for j in range(size):
        column = matrix[..., :, j]
        if columns:
            done = tf.stack(columns, axis=-1)  # [..., n, j]
            column = column - tf.linalg.matvec(done, done[..., j, :])
        below = tf.constant([0.0] * j + [1.0] * (size - j), matrix.dtype)
        columns.append(column * below / tf.sqrt(column[..., j:j + 1]))
    return tf.stack(columns, axis=-1)


def cholesky_solve(matrix: tf.Tensor, rhs: tf.Tensor) -> tf.Tensor:
    """`x` with `matrix @ x = rhs`: symmetric positive definite `[..., n, n]`, `rhs` `[..., n, k]`.

    `L z = rhs` forwards, then `L^T x = z` backwards, one row per step.

    Example:

    ```python
    x = cholesky_solve(tf.eye(3) * 2.0, tf.ones([3, 2]))  # 0.5 everywhere
    ```
    """
    size = _static_size(matrix)
    lower = cholesky(matrix)
    forward: list[tf.Tensor] = []  # rows of z, each [..., k]
    for i in range(size):
        row = rhs[..., i, :]
        if forward:
            row = row - tf.linalg.matvec(tf.stack(forward, axis=-1), lower[..., i, :i])
        forward.append(row / lower[..., i, i:i + 1])
    backward: list[tf.Tensor] = []  # rows of x from the last, each [..., k]
    for i in reversed(range(size)):
        row = forward[i]
        if backward:
            solved = tf.stack(backward[::-1], axis=-1)  # rows i+1..n-1 of x, as columns
            row = row - tf.linalg.matvec(solved, lower[..., i + 1:, i])
        backward.append(row / lower[..., i, i:i + 1])
    return tf.stack(backward[::-1], axis=-2)
