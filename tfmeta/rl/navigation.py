"""`Navigation2D`: the point-robot navigation tasks of Finn et al. 2017, rolled out in-graph."""

from __future__ import annotations

import tensorflow as tf

from tfmeta.rl.distributions import DiagonalGaussian
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_family import ActFn, TaskFamily, as_seed, fold_seed


class Navigation2D(TaskFamily):
    """A point robot that moves to a goal in the plane; each task is a goal.

    The environment of Finn et al. 2017 (rllab's `PointEnvRandGoal` behind
    `normalize`): the robot starts at the origin, observes its position, and
    an action in [-1, 1]^2 (clipped) moves it by 0.1 times the action. The
    reward is minus the distance to the goal; a trajectory ends after
    `horizon` steps or once the robot is within `goal_tolerance` of the goal
    in both coordinates. Goals are uniform in [-`goal_range`, `goal_range`]^2.

    The whole rollout is TensorFlow arithmetic: a `tf.while_loop` over the
    steps, the policy evaluated once per step for every task and trajectory,
    with no Python per step.

    Args:
        horizon: steps per trajectory.
        goal_range: goals are uniform in a square of this half-width.
        step_scale: distance moved per unit of action.
        goal_tolerance: the trajectory ends once both coordinates are this
            close to the goal.

    Example:

    ```python
    import tensorflow as tf
    from tfmeta import rl

    family = rl.Navigation2D()
    tasks = family.sample_tasks(4, seed=0)                          # [4, 2] goals
    act = lambda observations, seed: tf.zeros(tf.concat([tf.shape(observations)[:-1], [2]], 0))
    family.rollouts(act, tasks, rollouts_per_task=3, seed=1).returns()   # [4, 3]
    ```
    """

    name = "navigation_2d"
    task_dim = 2
    observation_dim = 2
    in_graph = True

    def __init__(
        self,
        horizon: int = 100,
        goal_range: float = 0.5,
        step_scale: float = 0.1,
        goal_tolerance: float = 0.01,
    ):
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(
                f"Expected `horizon` to be an integer >= 1. Received: horizon={horizon!r}"
            )
        self.horizon = horizon
        self.goal_range = float(goal_range)
        self.step_scale = float(step_scale)
        self.goal_tolerance = float(goal_tolerance)
        self.distribution = DiagonalGaussian(2)

    def _draw_tasks(self, num_tasks: int, seed: tf.Tensor, split: str) -> tf.Tensor:
        return tf.random.stateless_uniform(
            [num_tasks, 2], seed, minval=-self.goal_range, maxval=self.goal_range
        )

    def rollouts(
        self, act: ActFn, tasks: tf.Tensor, rollouts_per_task: int, seed: int | tf.Tensor
    ) -> Rollouts:
        goals = self.check_tasks(tasks)[:, None, :]  # [tasks, 1, 2]
        seed = as_seed(seed)
        batch = [tf.shape(goals)[0], rollouts_per_task]
        observations = tf.TensorArray(tf.float32, self.horizon)
        actions = tf.TensorArray(tf.float32, self.horizon)
        rewards = tf.TensorArray(tf.float32, self.horizon)
        masks = tf.TensorArray(tf.float32, self.horizon)

        def step(t, position, alive, observations, actions, rewards, masks):
            action = tf.cast(act(position, fold_seed(seed, t)), tf.float32)
            moved = position + self.step_scale * tf.clip_by_value(action, -1.0, 1.0)
            offset = moved - goals
            reward = -tf.norm(offset, axis=-1)
            reached = tf.reduce_all(tf.abs(offset) < self.goal_tolerance, axis=-1)
            mask = tf.cast(alive, tf.float32)
            observations = observations.write(t, position)
            actions = actions.write(t, action)
            rewards = rewards.write(t, reward * mask)
            masks = masks.write(t, mask)
            return (
                t + 1,
                moved,
                tf.logical_and(alive, tf.logical_not(reached)),
                observations,
                actions,
                rewards,
                masks,
            )

        start = tf.zeros(tf.concat([batch, [2]], axis=0))
        alive = tf.ones(batch, tf.bool)
        _, _, _, observations, actions, rewards, masks = tf.while_loop(
            lambda t, *_: t < self.horizon,
            step,
            (tf.constant(0), start, alive, observations, actions, rewards, masks),
        )

        def time_major_to_batch(array, extra_axes):
            stacked = array.stack()
            return tf.transpose(stacked, [1, 2, 0] + list(range(3, 3 + extra_axes)))

        return Rollouts(
            observations=time_major_to_batch(observations, 1),
            actions=time_major_to_batch(actions, 1),
            rewards=time_major_to_batch(rewards, 0),
            mask=time_major_to_batch(masks, 0),
        )

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "horizon": self.horizon,
            "goal_range": self.goal_range,
            "step_scale": self.step_scale,
            "goal_tolerance": self.goal_tolerance,
        }
