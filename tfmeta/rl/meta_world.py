"""`MetaWorldML1`: Meta-World's ML1 benchmark (Yu et al. 2019) as a task family.

Needs the `metaworld` extra: `pip install 'tfmeta[metaworld]'` (Meta-World
3.1 pins `mujoco==3.3.0`, which Gymnasium's MuJoCo environments also run on).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfmeta.rl.gymnasium_family import GymnasiumTaskFamily, import_gymnasium

ML1_TASKS_PER_SPLIT = 50  # Meta-World's ML1 holds 50 training and 50 test variations


def _import_metaworld():
    try:
        import metaworld
    except ImportError as error:
        raise ImportError(
            "Meta-World task families need Meta-World: "
            f"`pip install 'tfmeta[metaworld]'`. ({error})"
        ) from error
    return metaworld


def _task_wrapper():
    """The Gymnasium wrapper class that sets an ML1 variation from a task vector."""
    gymnasium = import_gymnasium()

    class MetaWorldTask(gymnasium.Wrapper):
        """Sets the wrapped Meta-World environment to the variation `task = [split, index]`."""

        def __init__(self, env, variations: dict):
            super().__init__(env)
            self.variations = variations

        def set_task(self, task: np.ndarray) -> None:
            split, index = int(task[0]), int(task[1])
            self.env.unwrapped.set_task(self.variations[split][index])

    return MetaWorldTask


class MetaWorldML1(GymnasiumTaskFamily):
    """One manipulation skill of Meta-World (e.g. `reach-v3`); tasks vary goal and object positions.

    A task is `[split, index]`: split 0 picks one of ML1's 50 training
    variations, split 1 one of its 50 test variations (`sample_tasks(...,
    split="test")`); indices are drawn uniformly. The reward is Meta-World's
    own. Meta-World environments take about 20 MB and most of a second to
    create each, so at most `max_environments` are held, and the
    trajectories of a call run in waves over them.

    Args:
        env_name: an ML1 skill, e.g. `"reach-v3"`, `"push-v3"`, `"pick-place-v3"`.
        horizon: steps per trajectory (Meta-World truncates at 500).
        max_environments: the most environments held at once.
        seed: Meta-World's seed for its task variations.
        processes: the processes that step the environments (`GymnasiumTaskFamily`).

    Example:

    ```python
    from tfmeta import rl
    family = rl.families.get({"name": "ml1", "env_name": "reach-v3", "horizon": 150})
    ```
    """

    name = "ml1"
    task_dim = 2

    def __init__(
        self,
        env_name: str = "reach-v3",
        horizon: int = 500,
        max_environments: int | None = 20,
        seed: int = 0,
        processes: int = 1,
    ):
        metaworld = _import_metaworld()
        available = sorted(metaworld.ML1.ENV_NAMES)
        if env_name not in available:
            raise ValueError(f"Unknown ML1 skill '{env_name}'. Expected one of {available}")
        self.env_name = env_name
        self.seed = seed
        benchmark = metaworld.ML1(env_name, seed=seed)
        self._env_class = benchmark.train_classes[env_name]  # the same class serves both splits
        self._variations = {0: list(benchmark.train_tasks), 1: list(benchmark.test_tasks)}
        self.env_id = f"Meta-World ML1 {env_name}"
        super().__init__(horizon=horizon, max_environments=max_environments, processes=processes)

    def make_env(self, task: np.ndarray | None = None):
        """A Gymnasium environment of this skill at `task` (`env.set_task(other)` switches it)."""
        gymnasium = import_gymnasium()
        env = gymnasium.wrappers.ClipAction(self._env_class())
        env = _task_wrapper()(env, self._variations)
        env.set_task(np.zeros(2) if task is None else np.asarray(task))
        return env

    def _draw_tasks(self, num_tasks: int, seed: tf.Tensor, split: str) -> tf.Tensor:
        indices = tf.random.stateless_uniform(
            [num_tasks], seed, minval=0, maxval=ML1_TASKS_PER_SPLIT, dtype=tf.int32
        )
        splits = tf.fill([num_tasks], 0.0 if split == "train" else 1.0)
        return tf.stack([splits, tf.cast(indices, tf.float32)], axis=1)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "env_name": self.env_name,
            "horizon": self.horizon,
            "max_environments": self.max_environments,
            "seed": self.seed,
        }
