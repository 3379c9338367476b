"""Linear solves in TFLite builtin ops, for models whose adaptation solves a small system.

LiteRT has no builtin Cholesky or triangular-solve kernel (TF's `Cholesky`
and `MatrixTriangularSolve` need the Flex delegate). For a system whose size
is fixed at export (R2-D2's `S x S` support-set Gram matrix, `S = ways *
shots`), the factorization and both substitutions unroll into `S` steps of
slices, matrix products, a square root and a division each. Leading batch
dimensions are solved in the same steps (LR-D2's systems, one per class).
A least-squares problem of static width (the meta-RL baseline's ridge fit)
unrolls likewise, into a QR factorization by block Gram-Schmidt and a back
substitution.
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
    return back_substitution(tf.linalg.matrix_transpose(lower), tf.stack(forward, axis=-2))


def back_substitution(upper: tf.Tensor, rhs: tf.Tensor) -> tf.Tensor:
    """`x` with `upper @ x = rhs`: upper-triangular `[..., n, n]` of static `n`, `rhs`
    `[..., n, k]`; one row per step, from the last."""
    size = _static_size(upper)
    backward: list[tf.Tensor] = []  # rows of x from the last, each [..., k]
    for i in reversed(range(size)):
        row = rhs[..., i, :]
        if backward:
            solved = tf.stack(backward[::-1], axis=-1)  # rows i+1..n-1 of x, as columns
            row = row - tf.linalg.matvec(solved, upper[..., i, i + 1:])
        backward.append(row / upper[..., i, i:i + 1])
    return tf.stack(backward[::-1], axis=-2)


def least_squares(matrix: tf.Tensor, rhs: tf.Tensor, block_size: int = 8) -> tf.Tensor:
    """`x` minimising `||matrix @ x - rhs||` for a `[m, n]` matrix of full column rank and
    static `n <= m`, `rhs` `[m, k]`.

    QR by block Gram-Schmidt, then back substitution: unlike the normal
    equations it does not square the matrix's condition number, which float32
    cannot afford for the meta-RL baseline's features. Each panel of
    `block_size` columns is orthogonalised twice against the basis before it
    by matrix products, then within itself column by column, again twice
    (classical Gram-Schmidt twice is as accurate as Householder's). Panels
    keep most of the work in matrix-matrix products: column by column, each
    of the `n` steps reads the whole growing basis for matrix-vector
    products, and the on-device adaptation of an Ant policy (254 baseline
    features) took over a second in LiteRT; with panels of 8, about an eighth
    of that (`benchmarks/policy_export.py`).
    """
    if block_size < 1:
        raise ValueError(f"Expected a positive `block_size`. Received: {block_size}")
    basis, upper = _qr(matrix, block_size)
    return back_substitution(upper, tf.matmul(basis, rhs, transpose_a=True))


def _qr(matrix: tf.Tensor, block_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """`Q [m, n], R [n, n]` of `matrix = Q R`, panel by panel: each panel projected out of the
    basis before it, then factored by the same steps one column at a time."""
    size = matrix.shape[-1]
    panels: list[tf.Tensor] = []  # the basis's orthonormal columns, panel by panel
    upper_blocks: list[tf.Tensor] = []  # R's block columns, each [n, width]
    for start in range(0, size, block_size):
        panel = matrix[:, start:start + block_size]
        width = panel.shape[-1]
        coefficients = tf.zeros([0, width], matrix.dtype)
        if panels:
            panel, coefficients = _project_out(tf.concat(panels, axis=1), panel)
        if width == 1:
            norm = tf.sqrt(tf.reduce_sum(tf.square(panel), axis=0, keepdims=True))
            panel_basis, panel_upper = panel / norm, norm
        else:
            panel_basis, panel_upper = _qr(panel, 1)
        panels.append(panel_basis)
        upper_blocks.append(tf.concat(
            [coefficients, panel_upper, tf.zeros([size - start - width, width], matrix.dtype)],
            axis=0))
    return tf.concat(panels, axis=1), tf.concat(upper_blocks, axis=1)


def _project_out(basis: tf.Tensor, columns: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`columns [m, b]` less their projection on the orthonormal `basis [m, k]`, done twice
    (once loses the digits of nearly dependent columns), and the coefficients `[k, b]`."""
    coefficients = tf.matmul(basis, columns, transpose_a=True)
    columns = columns - tf.matmul(basis, coefficients)
    again = tf.matmul(basis, columns, transpose_a=True)
    return columns - tf.matmul(basis, again), coefficients + again
