"""Curves drawn from a Gaussian process: the 1-D regression tasks of Garnelo et al. (2018)."""

from __future__ import annotations

import math

import tensorflow as tf

from tfmeta.data import episode as episode_lib
from tfmeta.data.task_family import TaskFamily


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"Expected `{name}` to be a finite float > 0. Received: {name}={value!r}")
    return float(value)


def rbf_kernel(
    x: tf.Tensor, lengthscale: float, signal_scale: float, noise_scale: float
) -> tf.Tensor:
    """The covariance `s^2 exp(-|x_i - x_j|^2 / (2 l^2)) + noise^2 I` of inputs `x` `[n, d]`.

    The squared-exponential (RBF) kernel of the CNP paper's curves, with the
    observation noise on the diagonal (which also keeps its Cholesky factor
    well defined for nearby inputs).

    Example:

    ```python
    x = tf.constant([[0.0], [0.5]])
    tfmeta.data.gaussian_process.rbf_kernel(x, 0.4, 1.0, 0.02)  # [2, 2]
    ```
    """
    squared_distance = tf.reduce_sum(tf.square(x[:, tf.newaxis, :] - x[tf.newaxis, :, :]), -1)
    kernel = signal_scale**2 * tf.exp(-0.5 * squared_distance / lengthscale**2)
    return kernel + noise_scale**2 * tf.eye(tf.shape(x)[0], dtype=x.dtype)


class GaussianProcessTasks(TaskFamily):
    """Tasks whose curve is one draw of a zero-mean Gaussian process with an RBF kernel.

    Each task draws `support_shots + query_shots` inputs `x ~ U[input_range]`
    and their targets jointly from `N(0, K(x, x))` (`rbf_kernel`), in
    TensorFlow ops from the task's stateless seed (the Cholesky factor is
    taken in float64). The defaults are the 1-D regression setting of
    Garnelo et al. 2018 (their released code): lengthscale 0.4, signal scale
    1.0, noise 0.02, `x ~ U[-2, 2]`. Episodes hold `[shots, 1]` inputs and
    targets; the support set is the context, the queries the targets (unlike
    the authors' training, the targets here do not include the context
    points). `episodes` comes from `tfmeta.data.TaskFamily`.

    Args:
        lengthscale: the kernel's lengthscale l.
        signal_scale: the kernel's signal standard deviation s.
        noise_scale: the observation noise standard deviation.
        input_range: `(low, high)` of the inputs.
        dtype: dtype of inputs and targets.

    Example:

    ```python
    tasks = tfmeta.data.GaussianProcessTasks()
    ds = tasks.episodes(support_shots=10, query_shots=20, meta_batch_size=16, seed=0)
    batch = next(iter(ds))  # batch["query_y"].shape == (16, 20, 1)
    ```
    """

    def __init__(
        self,
        lengthscale: float = 0.4,
        signal_scale: float = 1.0,
        noise_scale: float = 0.02,
        input_range: tuple[float, float] = (-2.0, 2.0),
        dtype: tf.DType | str = tf.float32,
    ):
        self.lengthscale = _positive("lengthscale", lengthscale)
        self.signal_scale = _positive("signal_scale", signal_scale)
        self.noise_scale = _positive("noise_scale", noise_scale)
        low, high = input_range
        if not low < high:
            raise ValueError(
                "Expected `input_range` as (low, high) with low < high. Received: "
                f"input_range={(low, high)}"
            )
        self.input_range = (float(low), float(high))
        self.dtype = tf.as_dtype(dtype)

    def element_spec(self, support_shots: int, query_shots: int) -> dict[str, tf.TensorSpec]:
        """The spec of one episode (before meta-batching)."""
        return episode_lib.episode_spec(
            (1,), (1,), support_shots, query_shots, self.dtype, self.dtype
        )

    def sample(self, seed: tf.Tensor, support_shots: int, query_shots: int) -> dict[str, tf.Tensor]:
        """One episode, a pure function of `seed` (a `[2]` int tensor)."""
        input_seed, curve_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        count = support_shots + query_shots
        x = tf.random.stateless_uniform([count, 1], input_seed, *self.input_range, tf.float64)
        kernel = rbf_kernel(x, self.lengthscale, self.signal_scale, self.noise_scale)
        y = tf.linalg.cholesky(kernel) @ tf.random.stateless_normal([count, 1], curve_seed,
                                                                    dtype=tf.float64)
        return self.split(tf.cast(x, self.dtype), tf.cast(y, self.dtype), support_shots)
