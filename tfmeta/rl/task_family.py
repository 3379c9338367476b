"""`TaskFamily`: what a meta-RL task distribution declares and does.

A family samples tasks (a goal, a target velocity, a direction: each task is
a small float vector) by seed, and rolls out a policy on a batch of tasks.
Families whose dynamics are plain arithmetic roll out inside one TF graph
(`in_graph = True`); simulator families step many environments together from
Python and evaluate the policy once per step for all of them.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from tfmeta.data.pipeline_options import without_autotune_thread
from tfmeta.rl.distributions import ActionDistribution
from tfmeta.rl.rollouts import Rollouts

SPLITS = ("train", "test")
# act(observations [tasks, rollouts, observation_dim], seed [2]) -> actions [tasks, rollouts, ...]
ActFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def as_seed(seed: int | tf.Tensor) -> tf.Tensor:
    """A stateless-random seed (`[2]` int64) from an integer or an existing seed tensor."""
    if isinstance(seed, bool):
        raise ValueError(f"Expected an integer seed or a [2] seed tensor. Received: seed={seed!r}")
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape != (2,) or not seed.dtype.is_integer:
        raise ValueError(
            f"Expected an integer seed or a [2] integer seed tensor. Received: {seed!r}"
        )
    return tf.cast(seed, tf.int64)


def fold_seed(seed: tf.Tensor, index: int | tf.Tensor) -> tf.Tensor:
    """A new seed derived from `seed` and `index` (distinct indices, independent streams)."""
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int64))


class TaskFamily:
    """Base class of the task families: declares spaces, samples tasks, rolls out policies.

    Subclasses set `name`, `task_dim`, `observation_dim`, `distribution` (a
    `tfmeta.rl.distributions` object for the action space), `horizon` and
    `in_graph`, and implement `_draw_tasks` and `rollouts`.
    """

    name: str = "task_family"
    task_dim: int
    observation_dim: int
    distribution: ActionDistribution
    horizon: int
    in_graph: bool = False

    def sample_tasks(
        self, num_tasks: int, seed: int | tf.Tensor, split: str = "train"
    ) -> tf.Tensor:
        """`[num_tasks, task_dim]` float32 tasks; the same seed gives the same tasks.

        Args:
            num_tasks: how many.
            seed: an integer or a `[2]` seed tensor.
            split: `"train"` or `"test"`. Families with a finite set of
                task variations (Meta-World) hold separate test variations;
                families of continuous tasks draw both splits from one
                distribution, where disjoint seeds keep held-out tasks
                apart.
        """
        if split not in SPLITS:
            raise ValueError(f"Expected `split` in {list(SPLITS)}. Received: split={split!r}")
        return self._draw_tasks(num_tasks, as_seed(seed), split)

    def _draw_tasks(self, num_tasks: int, seed: tf.Tensor, split: str) -> tf.Tensor:
        """`sample_tasks` after its checks: subclasses draw here."""
        raise NotImplementedError

    def rollouts(
        self, act: ActFn, tasks: tf.Tensor, rollouts_per_task: int, seed: int | tf.Tensor
    ) -> Rollouts:
        """Rolls out `rollouts_per_task` trajectories of `horizon` steps on every task.

        Args:
            act: the policy, `act(observations, seed) -> actions` for
                observations `[tasks, rollouts_per_task, observation_dim]`;
                called once per step for all environments.
            tasks: `[tasks, task_dim]`.
            rollouts_per_task: trajectories per task.
            seed: seeds the policy's noise and the initial states.

        Returns:
            `Rollouts` with leading axes `[tasks, rollouts_per_task, horizon]`.
        """
        raise NotImplementedError

    def task_batches(
        self, meta_batch_size: int, seed: int, num_batches: int | None = None
    ) -> tf.data.Dataset:
        """Meta-batches of tasks for `fit` / `evaluate`: `{"tasks", "seed"}` per element.

        Element `i` is a pure function of `seed` and `i` (resume with
        `.skip(i)`): `tasks` is `[meta_batch_size, task_dim]` and `seed` the
        `[2]` seed of that meta-iteration's rollouts.

        Args:
            meta_batch_size: tasks per meta-iteration.
            seed: an integer.
            num_batches: None for an endless stream.
        """
        if (
            isinstance(meta_batch_size, bool)
            or not isinstance(meta_batch_size, int)
            or meta_batch_size < 1
        ):
            raise ValueError(
                "Expected `meta_batch_size` to be an integer >= 1. "
                f"Received: meta_batch_size={meta_batch_size!r}"
            )
        base = as_seed(seed)
        counter = (
            tf.data.Dataset.counter() if num_batches is None else tf.data.Dataset.range(num_batches)
        )

        def batch(index):
            batch_seed = fold_seed(base, index)
            return {
                "tasks": self.sample_tasks(meta_batch_size, fold_seed(batch_seed, 0)),
                "seed": fold_seed(batch_seed, 1),
            }

        return without_autotune_thread(counter.map(batch))

    def check_tasks(self, tasks: tf.Tensor) -> tf.Tensor:
        """`tasks` as float32 `[num_tasks, task_dim]`, or a ValueError naming the family."""
        tasks = tf.convert_to_tensor(tasks, tf.float32)
        if tasks.shape.rank != 2 or tasks.shape[-1] != self.task_dim:
            raise ValueError(
                f"Expected tasks of shape [num_tasks, {self.task_dim}] for task family "
                f"'{self.name}'. Received: shape {tasks.shape}"
            )
        return tasks

    def get_config(self) -> dict:
        """The arguments that rebuild this family with `tfmeta.rl.families.get`."""
        return {"name": self.name}
