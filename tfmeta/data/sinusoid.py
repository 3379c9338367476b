"""The sinusoid regression task family of Finn et al. (2017), as a tf.data source."""

from __future__ import annotations

import math

import tensorflow as tf

from tfmeta.data import episode as episode_lib

AMPLITUDE = "amplitude"
PHASE = "phase"


class SinusoidTasks:
    """Tasks `y = A * sin(x - phase)` with `A`, `phase` and `x` drawn uniformly.

    The defaults are the protocol of Finn et al. 2017 (section 5.1):
    `A ~ U[0.1, 5]`, `phase ~ U[0, pi]`, `x ~ U[-5, 5]`. Episodes hold
    `[shots, 1]` inputs and targets, and carry each task's `amplitude` and
    `phase` so that the true curve can be drawn.

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
                    f"Expected `{name}` as (low, high) with low <= high. Received: {name}={(low, high)}"
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
        y = amplitude * tf.sin(x - phase)
        return {
            episode_lib.SUPPORT_X: x[:support_shots],
            episode_lib.SUPPORT_Y: y[:support_shots],
            episode_lib.QUERY_X: x[support_shots:],
            episode_lib.QUERY_Y: y[support_shots:],
            AMPLITUDE: amplitude,
            PHASE: phase,
        }

    def episodes(
        self,
        support_shots: int = 10,
        query_shots: int = 10,
        meta_batch_size: int | None = 25,
        num_episodes: int | None = None,
        seed: int | None = None,
    ) -> tf.data.Dataset:
        """A dataset of episodes, meta-batched when `meta_batch_size` is set.

        Args:
            support_shots: support points per task (K).
            query_shots: query points per task.
            meta_batch_size: tasks per element; None yields single episodes.
            num_episodes: tasks in all (None: infinite). With a meta-batch
                size, a last incomplete meta-batch is dropped.
            seed: the same seed gives the same tasks; None draws one.

        Returns:
            A `tf.data.Dataset` of episode dicts.
        """
        if isinstance(support_shots, bool) or not isinstance(support_shots, int) or support_shots < 1:
            raise ValueError(
                f"Expected support_shots to be an integer >= 1. Received: support_shots={support_shots!r}"
            )
        if isinstance(query_shots, bool) or not isinstance(query_shots, int) or query_shots < 1:
            raise ValueError(
                f"Expected query_shots to be an integer >= 1. Received: query_shots={query_shots!r}"
            )
        if meta_batch_size is not None and meta_batch_size < 1:
            raise ValueError(
                f"Expected meta_batch_size >= 1 or None. Received: meta_batch_size={meta_batch_size}"
            )
        if num_episodes is not None and num_episodes < 1:
            raise ValueError(
                f"Expected num_episodes >= 1 or None. Received: num_episodes={num_episodes}"
            )
        dataset = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=False)
        if num_episodes is not None:
            dataset = dataset.take(num_episodes)
        dataset = dataset.map(
            lambda value: self.sample(
                tf.stack([value, tf.constant(0, tf.int64)]), support_shots, query_shots
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if meta_batch_size is not None:
            dataset = dataset.batch(meta_batch_size, drop_remainder=True)
        return dataset.prefetch(tf.data.AUTOTUNE)
