"""The unrolled Cholesky and least-squares solves against numpy in float64, and in LiteRT with
builtin ops only."""

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.exporters import builtin_linalg, tflite, tflite_ops


def spd(size, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size))
    return a @ a.T + 0.3 * np.eye(size), rng.standard_normal((size, 3))


@pytest.mark.parametrize("size", [1, 2, 7, 25])
def test_cholesky_and_solve_equal_numpy_in_float64(size):
    matrix, rhs = spd(size)
    np.testing.assert_allclose(builtin_linalg.cholesky(tf.constant(matrix)),
                               np.linalg.cholesky(matrix), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(builtin_linalg.cholesky_solve(tf.constant(matrix), tf.constant(rhs)),
                               np.linalg.solve(matrix, rhs), rtol=1e-8, atol=1e-10)


def test_a_batch_of_systems_is_solved_like_each_system():
    systems = [spd(6, seed) for seed in range(3)]
    matrices, rhs = (np.stack(parts) for parts in zip(*systems))
    np.testing.assert_allclose(builtin_linalg.cholesky_solve(tf.constant(matrices),
                                                             tf.constant(rhs)),
                               np.linalg.solve(matrices, rhs), rtol=1e-8, atol=1e-10)


def run_in_litert(function, **inputs):
    """`function` converted with builtin ops only (asserted) and run once in LiteRT."""
    specs = [tf.TensorSpec(value.shape, tf.float32) for value in inputs.values()]
    concrete = tf.function(function, input_signature=specs).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    content = converter.convert()
    assert tflite_ops.custom_operators(content) == []
    interpreter = tflite.interpreter(content)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        name = next(key for key in inputs if key in detail["name"])
        interpreter.set_tensor(detail["index"], inputs[name].astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_solve_converts_to_builtin_ops_and_runs_in_litert():
    matrix, rhs = spd(10, seed=1)
    np.testing.assert_allclose(run_in_litert(builtin_linalg.cholesky_solve, matrix=matrix, rhs=rhs),
                               np.linalg.solve(matrix, rhs), rtol=1e-3, atol=1e-4)


def test_least_squares_across_panels_converts_to_builtin_ops_and_runs_in_litert():
    rng = np.random.default_rng(4)
    matrix, rhs = rng.standard_normal((60, 11)), rng.standard_normal((60, 2))

    def solve(matrix, rhs):  # two panels of 4 columns and one of 3
        return builtin_linalg.least_squares(matrix, rhs, block_size=4)

    np.testing.assert_allclose(run_in_litert(solve, matrix=matrix, rhs=rhs),
                               np.linalg.lstsq(matrix, rhs, rcond=None)[0], rtol=1e-4, atol=1e-5)


def test_a_matrix_of_unknown_size_or_a_panel_width_below_one_is_refused():
    with pytest.raises(ValueError, match="Expected a square matrix of static size"):
        builtin_linalg.cholesky(tf.zeros([3, 4]))
    with pytest.raises(ValueError, match="Expected a positive `block_size`. Received: 0"):
        builtin_linalg.least_squares(tf.zeros([3, 2]), tf.zeros([3, 1]), block_size=0)


@pytest.mark.parametrize("rows, columns, block_size", [
    (1, 1, 8), (9, 4, 8), (200, 12, 8), (200, 12, 1), (200, 12, 5), (300, 40, 16)])
def test_least_squares_equals_numpy_in_float64(rows, columns, block_size):
    rng = np.random.default_rng(columns)
    matrix, rhs = rng.standard_normal((rows, columns)), rng.standard_normal((rows, 2))
    np.testing.assert_allclose(
        builtin_linalg.least_squares(tf.constant(matrix), tf.constant(rhs), block_size),
        np.linalg.lstsq(matrix, rhs, rcond=None)[0], rtol=1e-9, atol=1e-11,
    )


@pytest.mark.parametrize("block_size", [8, 3])
def test_float32_least_squares_keeps_the_digits_the_normal_equations_lose(block_size):
    """Columns scaled over six orders of magnitude and nearly collinear: a condition number of
    about 1e7, whose square float32 cannot hold; in one panel and across three."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((400, 6))
    matrix = np.concatenate([base, base[:, :2] + 1e-3 * rng.standard_normal((400, 2))], axis=1)
    matrix = matrix * np.logspace(-3, 3, 8)
    rhs = matrix @ rng.standard_normal((8, 1)) + 0.1 * rng.standard_normal((400, 1))
    fitted = matrix @ np.linalg.lstsq(matrix, rhs, rcond=None)[0]
    as32 = [tf.constant(x, tf.float32) for x in (matrix, rhs)]
    qr = as32[0] @ builtin_linalg.least_squares(*as32, block_size=block_size)
    gram = tf.matmul(as32[0], as32[0], transpose_a=True)
    normal = as32[0] @ tf.linalg.solve(gram, tf.matmul(as32[0], as32[1], transpose_a=True))
    qr_error = np.max(np.abs(qr - fitted)) / np.max(np.abs(fitted))
    normal_error = np.max(np.abs(normal - fitted)) / np.max(np.abs(fitted))
    assert qr_error < 1e-4 and qr_error < normal_error / 10
