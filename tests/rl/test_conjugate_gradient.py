import numpy as np
import pytest
import tensorflow as tf

from tfmeta.rl.conjugate_gradient import conjugate_gradient


def test_solves_a_symmetric_positive_definite_system():
    rng = np.random.default_rng(0)
    factor = rng.normal(size=(6, 6))
    matrix = factor @ factor.T + 0.5 * np.eye(6)
    b = rng.normal(size=6)
    solution = conjugate_gradient(
        lambda v: tf.linalg.matvec(tf.constant(matrix), v), tf.constant(b), 6
    )
    np.testing.assert_allclose(solution, np.linalg.solve(matrix, b), rtol=1e-6)


def test_stops_once_the_residual_vanishes():
    # One step solves 2 I x = b exactly; a second would divide 0 by 0 and give NaN.
    solve = tf.function(lambda b: conjugate_gradient(lambda v: 2.0 * v, b, iterations=10))
    np.testing.assert_allclose(solve(tf.ones([3])), 0.5 * np.ones(3))


def test_rejects_zero_iterations():
    with pytest.raises(ValueError, match="iterations"):
        conjugate_gradient(lambda v: v, tf.ones([2]), iterations=0)
