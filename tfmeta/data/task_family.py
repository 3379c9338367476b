"""`TaskFamily`: a synthetic family of tasks (regression or other), as a tf.data source.

A family says how to draw one task and its examples from a seed (`sample`);
`episodes` turns that into the deterministic, meta-batched dataset the
learners take. The sinusoid tasks of Finn et al. (2017) are one
(`tfmeta.data.SinusoidTasks`); a family of one's own is a subclass with one
method.
"""

from __future__ import annotations

import tensorflow as tf

from tfmeta.argument_validation import check_integer
from tfmeta.data import episode as episode_lib
from tfmeta.data.pipeline_options import without_autotune_thread


class TaskFamily:
    """Base class of task families: subclass it and implement `sample`.

    `sample(seed, support_shots, query_shots)` returns one episode, a dict with
    `support_x`, `support_y`, `query_x`, `query_y` (and any extra entries,
    such as the task's parameters), computed with TensorFlow ops from the
    stateless `seed` only (`tf.random.stateless_*`). `episodes` then draws
    episode `i` from a seed derived from `(seed, i)`, so the same seed gives
    the same tasks in any process.

    Example:

    ```python
    class LineTasks(tfmeta.data.TaskFamily):
        \"\"\"y = slope * x + intercept, slope and intercept drawn per task.\"\"\"

        def sample(self, seed, support_shots, query_shots):
            task_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
            slope, intercept = tf.unstack(tf.random.stateless_uniform([2], task_seed, -3, 3))
            x = tf.random.stateless_uniform([support_shots + query_shots, 1], x_seed, -5, 5)
            return self.split(x, slope * x + intercept, support_shots)

    episodes = LineTasks().episodes(support_shots=5, query_shots=10, meta_batch_size=16, seed=0)
    ```
    """

    def sample(self, seed: tf.Tensor, support_shots: int, query_shots: int) -> dict[str, tf.Tensor]:
        """One episode, a pure function of `seed` (an int64 tensor of shape `[2]`).

        Args:
            seed: the stateless seed of this task.
            support_shots: examples of the support set.
            query_shots: examples of the query set.

        Returns:
            A dict with the four episode tensors (`tfmeta.data.EPISODE_KEYS`),
            support `[support_shots, ...]`, query `[query_shots, ...]`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement sample(seed, support_shots, query_shots)"
        )

    @staticmethod
    def split(x: tf.Tensor, y: tf.Tensor, support_shots: int) -> dict[str, tf.Tensor]:
        """The episode whose support set is the first `support_shots` examples of `(x, y)`."""
        return {
            episode_lib.SUPPORT_X: x[:support_shots],
            episode_lib.SUPPORT_Y: y[:support_shots],
            episode_lib.QUERY_X: x[support_shots:],
            episode_lib.QUERY_Y: y[support_shots:],
        }

    def element_spec(self, support_shots: int, query_shots: int) -> dict[str, tf.TensorSpec]:
        """The spec of one episode (before meta-batching), from tracing `sample` (no data is drawn).

        Raises:
            ValueError: if `sample` does not return the four episode tensors.
        """
        seeds = tf.data.Dataset.from_tensors(tf.zeros([2], tf.int64))
        spec = seeds.map(lambda seed: self.sample(seed, support_shots, query_shots)).element_spec
        if not isinstance(spec, dict) or not set(episode_lib.EPISODE_KEYS) <= set(spec):
            raise ValueError(
                f"Expected {type(self).__name__}.sample to return a dict with the keys "
                f"{list(episode_lib.EPISODE_KEYS)}. Received: {spec}"
            )
        return spec

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
            support_shots: support examples per task (K).
            query_shots: query examples per task.
            meta_batch_size: tasks per element; None yields single episodes.
            num_episodes: tasks in all (None: infinite). With a meta-batch
                size, a last incomplete meta-batch is dropped.
            seed: the same seed gives the same tasks; None draws one.

        Returns:
            A `tf.data.Dataset` of episode dicts, with tf.data's autotuning
            off (`tfmeta/data/pipeline_options.py`).

        Raises:
            ValueError: for counts that are not integers >= 1, or a `sample`
                that does not return the episode tensors.
        """
        for name, value in (("support_shots", support_shots), ("query_shots", query_shots)):
            check_integer(name, value)
        for name, value in (("meta_batch_size", meta_batch_size), ("num_episodes", num_episodes)):
            check_integer(name, value, allow_none=True)
        self.element_spec(support_shots, query_shots)
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
        return without_autotune_thread(dataset.prefetch(tf.data.AUTOTUNE))
