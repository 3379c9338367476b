"""The sinusoid regression task family of Finn et al. (2017), as a tf.data source."""

from __future__ import annotations

import math

import tensorflow as tf

from tfmeta.data import episode as episode_lib
from tfmeta.data.task_family import TaskFamily

AMPLITUDE = "amplitude"
PHASE = "phase"


class SinusoidTasks(TaskFamily):
    """Tasks `y = A * sin(x - phase)` with `A`, `phase` and `x` drawn uniformly.

    The defaults are the protocol of Finn et al. 2017 (section 5.1):
    `A ~ U[0.1, 5]`, `phase ~ U[0, pi]`, `x ~ U[-5, 5]`. Episodes hold
    `[shots, 1]` inputs and targets, and carry each task's `amplitude` and
    `phase` so that the true curve can be drawn. `episodes` comes from
    `tfmeta.data.TaskFamily`.

    Args:
        amplitude_range: `(low, high)` of the amplitude.
        phase_range: `(low, high)` of the phase.
        input_range: `(low, high)` of the inputs.
        dtype: dtype of inputs and targets.

    Example:

    ```python
    tasks = tfmeta.data.SinusoidTasks()
    ds = tasks.episodes(support_shots=10, query_shots=10, meta_batch_size=25, seed=0)
    batch = next(iter(ds))  # batch["support_x"].shape == (25, 10, 1)
    ```
    """

    def __init__(
        self,
        amplitude_range: tuple[float, float] = (0.1, 5.0),
        phase_range: tuple[float, float] = (0.0, math.pi),
        input_range: tuple[float, float] = (-5.0, 5.0),
        dtype: tf.DType | str = tf.float32,
    ):
        for name, (low, high) in (
            ("amplitude_range", amplitude_range),
            ("phase_range", phase_range),
            ("input_range", input_range),
        ):
            if not low <= high:
                raise ValueError(
                    f"Expected `{name}` as (low, high) with low <= high. "
                    f"Received: {name}={(low, high)}"
                )
        self.amplitude_range = tuple(float(v) for v in amplitude_range)
        self.phase_range = tuple(float(v) for v in phase_range)
        self.input_range = tuple(float(v) for v in input_range)
        self.dtype = tf.as_dtype(dtype)

    def element_spec(self, support_shots: int, query_shots: int) -> dict[str, tf.TensorSpec]:
        """The spec of one episode (before meta-batching)."""
        spec = episode_lib.episode_spec(
            (1,), (1,), support_shots, query_shots, self.dtype, self.dtype
        )
        spec[AMPLITUDE] = tf.TensorSpec([], self.dtype)
        spec[PHASE] = tf.TensorSpec([], self.dtype)
        return spec

    def sample(self, seed: tf.Tensor, support_shots: int, query_shots: int) -> dict[str, tf.Tensor]:
        """One episode, a pure function of `seed` (a `[2]` int tensor)."""
        seeds = tf.random.experimental.stateless_split(seed, 3)
        amplitude_seed, phase_seed, input_seed = seeds[0], seeds[1], seeds[2]
        amplitude = tf.random.stateless_uniform(
            [], amplitude_seed, *self.amplitude_range, dtype=self.dtype
        )
        phase = tf.random.stateless_uniform([], phase_seed, *self.phase_range, dtype=self.dtype)
        x = tf.random.stateless_uniform(
            [support_shots + query_shots, 1], input_seed, *self.input_range, dtype=self.dtype
        )
        return {
            **self.split(x, amplitude * tf.sin(x - phase), support_shots),
            AMPLITUDE: amplitude,
            PHASE: phase,
        }
