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


def test_solve_converts_to_builtin_ops_and_runs_in_litert():
    matrix, rhs = spd(10, seed=1)
    solve = tf.function(builtin_linalg.cholesky_solve, input_signature=[
        tf.TensorSpec([10, 10], tf.float32), tf.TensorSpec([10, 3], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [solve.get_concrete_function()], solve)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    content = converter.convert()
    assert tflite_ops.custom_operators(content) == []
    interpreter = tflite.interpreter(content)
    interpreter.allocate_tensors()
    inputs = {"matrix": matrix, "rhs": rhs}
    for detail in interpreter.get_input_details():
        name = next(key for key in inputs if key in detail["name"])
        interpreter.set_tensor(detail["index"], inputs[name].astype(np.float32))
    interpreter.invoke()
    received = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(received, np.linalg.solve(matrix, rhs), rtol=1e-3, atol=1e-4)


def test_a_matrix_of_unknown_size_is_refused():
    with pytest.raises(ValueError, match="Expected a square matrix of static size"):
        builtin_linalg.cholesky(tf.zeros([3, 4]))


@pytest.mark.parametrize("rows, columns", [(1, 1), (9, 4), (200, 12)])
def test_least_squares_equals_numpy_in_float64(rows, columns):
    rng = np.random.default_rng(columns)
    matrix, rhs = rng.standard_normal((rows, columns)), rng.standard_normal((rows, 2))
    np.testing.assert_allclose(
        builtin_linalg.least_squares(tf.constant(matrix), tf.constant(rhs)),
        np.linalg.lstsq(matrix, rhs, rcond=None)[0], rtol=1e-9, atol=1e-11,
    )


def test_float32_least_squares_keeps_the_digits_the_normal_equations_lose():
    """Columns scaled over six orders of magnitude and nearly collinear: a condition number of
    about 1e7, whose square float32 cannot hold."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((400, 6))
    matrix = np.concatenate([base, base[:, :2] + 1e-3 * rng.standard_normal((400, 2))], axis=1)
    matrix = matrix * np.logspace(-3, 3, 8)
    rhs = matrix @ rng.standard_normal((8, 1)) + 0.1 * rng.standard_normal((400, 1))
    fitted = matrix @ np.linalg.lstsq(matrix, rhs, rcond=None)[0]
    as32 = [tf.constant(x, tf.float32) for x in (matrix, rhs)]
    qr = as32[0] @ builtin_linalg.least_squares(*as32)
    gram = tf.matmul(as32[0], as32[0], transpose_a=True)
    normal = as32[0] @ tf.linalg.solve(gram, tf.matmul(as32[0], as32[1], transpose_a=True))
    qr_error = np.max(np.abs(qr - fitted)) / np.max(np.abs(fitted))
    normal_error = np.max(np.abs(normal - fitted)) / np.max(np.abs(fitted))
    assert qr_error < 1e-4 and qr_error < normal_error / 10
