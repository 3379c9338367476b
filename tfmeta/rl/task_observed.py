"""`TaskObserved`: a family whose policy also observes the task (the "oracle" baseline).

Finn et al. 2017 compare MAML with an oracle: a policy that receives the task
(the goal position, the target velocity) as part of its observation and so
needs no adaptation. Wrapping any family in `TaskObserved` gives that
setting: each observation gains the task's values as trailing features, in
the rollouts as in what the policy is shown at every step. Trained with
`PolicyMAML(..., inner_steps=0)` it is the paper's oracle.
"""

from __future__ import annotations

import tensorflow as tf

from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_family import ActFn, TaskFamily


def append_task(observations: tf.Tensor, tasks: tf.Tensor) -> tf.Tensor:
    """`observations` `[tasks, ..., observation_dim]` with each task's values appended."""
    observations = tf.convert_to_tensor(observations)
    rank = observations.shape.rank
    task_dim = tasks.shape[-1]
    shown = tf.reshape(
        tf.cast(tasks, observations.dtype), tf.concat([[-1], [1] * (rank - 2), [task_dim]], 0)
    )
    shape = tf.concat([tf.shape(observations)[:-1], [task_dim]], 0)
    return tf.concat([observations, tf.broadcast_to(shown, shape)], axis=-1)


class TaskObserved(TaskFamily):
    """`family` with the task appended to every observation.

    Tasks, dynamics, rewards, horizon and action space are `family`'s; only
    `observation_dim` grows by `task_dim`.

    Args:
        family: the wrapped `TaskFamily`.

    Example:

    ```python
    from tfmeta import rl
    family = rl.TaskObserved(rl.Navigation2D())   # observes (x, y, goal_x, goal_y)
    oracle = rl.PolicyMAML(rl.gaussian_mlp_policy(4, 2), family, inner_steps=0)
    ```
    """

    name = "task_observed"

    def __init__(self, family: TaskFamily):
        if not isinstance(family, TaskFamily):
            raise ValueError(
                f"Expected `family` to be a TaskFamily. Received: family={family!r}"
            )
        self.family = family
        self.task_dim = family.task_dim
        self.observation_dim = family.observation_dim + family.task_dim
        self.distribution = family.distribution
        self.horizon = family.horizon
        self.in_graph = family.in_graph

    def _draw_tasks(self, num_tasks: int, seed: tf.Tensor, split: str) -> tf.Tensor:
        return self.family.sample_tasks(num_tasks, seed, split)

    def check_tasks(self, tasks: tf.Tensor) -> tf.Tensor:
        return self.family.check_tasks(tasks)

    def rollouts(
        self, act: ActFn, tasks: tf.Tensor, rollouts_per_task: int, seed: int | tf.Tensor
    ) -> Rollouts:
        tasks = self.check_tasks(tasks)
        rollouts = self.family.rollouts(
            lambda observations, step_seed: act(append_task(observations, tasks), step_seed),
            tasks,
            rollouts_per_task,
            seed,
        )
        return rollouts._replace(observations=append_task(rollouts.observations, tasks))

    def get_config(self) -> dict:
        return {"name": self.name, "family": self.family.get_config()}
