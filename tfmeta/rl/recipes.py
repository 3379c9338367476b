"""The settings of Finn et al. 2017 for each task family, and the learner they build.

From the authors' code (`maml_examples/` of their MAML RL repository):
2x100 ReLU Gaussian policies, TRPO, and the evaluation of their test
scripts: a first step of the training step size, later steps of half of it
(Ant direction: a hundredth), on 40 (2D navigation, Ant direction) or 20
trajectories per step. Each MuJoCo recipe is that of the model its test
script loads (`maml1_fbs<trajectories per task>_mbs<tasks>_flr_<inner
step>_mlr<KL bound>/itr_<meta-iterations>`): HalfCheetah velocity fbs10,
mbs40, KL 0.01, 475; HalfCheetah direction fbs20, mbs40, KL 0.02, 100; Ant
velocity fbs20, mbs40, KL 0.01, 375; Ant direction fbs40, mbs40, KL 0.01, 575.
"""

from __future__ import annotations

import dataclasses

import keras

from tfmeta.rl import families
from tfmeta.rl.policies import gaussian_mlp_policy
from tfmeta.rl.policy_maml import PolicyMAML
from tfmeta.rl.task_observed import TaskObserved
from tfmeta.rl.trpo import TRPO


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a family is meta-trained and evaluated.

    Attributes:
        inner_learning_rate: the inner step size ("fast learning rate").
        meta_batch_size: tasks per meta-iteration.
        rollouts_per_task: trajectories per task and step ("fast batch size").
        iterations: meta-iterations of the paper's runs.
        eval_learning_rates: step sizes of evaluation steps 1, 2, 3.
        eval_rollouts_per_task: trajectories per task and evaluation step.
        iterations_per_epoch: meta-iterations between checkpoints.
        max_kl: TRPO's KL bound ("meta step size").
    """

    inner_learning_rate: float
    meta_batch_size: int
    rollouts_per_task: int
    iterations: int
    eval_learning_rates: tuple[float, ...]
    eval_rollouts_per_task: int
    iterations_per_epoch: int
    max_kl: float = 0.01


_MUJOCO_EVAL = (0.1, 0.05, 0.05)
RECIPES = {
    "navigation_2d": Recipe(0.5, 20, 20, 100, (0.5, 0.25, 0.25), 40, 10),
    "halfcheetah_vel": Recipe(0.1, 40, 10, 475, _MUJOCO_EVAL, 20, 5),
    "halfcheetah_dir": Recipe(0.1, 40, 20, 100, _MUJOCO_EVAL, 20, 5, max_kl=0.02),
    "ant_dir": Recipe(0.1, 40, 40, 575, (0.1, 0.001, 0.001), 40, 5),
    "ant_vel": Recipe(0.1, 40, 20, 375, _MUJOCO_EVAL, 20, 5),
}


def get(name: str) -> Recipe:
    """The recipe of a family; a ValueError lists the known ones."""
    if name not in RECIPES:
        raise ValueError(f"Unknown task family '{name}'. Expected one of {sorted(RECIPES)}")
    return RECIPES[name]


def build_learner(
    name: str,
    seed: int = 0,
    family_options: dict | None = None,
    observe_task: bool = False,
    max_kl: float | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    **overrides,
) -> PolicyMAML:
    """A compiled `PolicyMAML` (TRPO, the recipe's KL bound) for family `name` with the paper's
    settings.

    Args:
        name: a family name (`tfmeta.rl.families.names()`).
        seed: seeds the policy's initial weights.
        family_options: arguments of the family (e.g. `{"observation":
            "gymnasium"}` for a MuJoCo family, `tfmeta.rl.mujoco_families`).
        observe_task: the policy also observes the task (`TaskObserved`:
            the paper's oracle, with `inner_steps=0`).
        max_kl: TRPO's KL bound in place of the recipe's (None: the recipe's).
        optimizer: a Keras optimizer for the outer update in place of TRPO:
            `PolicyMAML`'s clipped surrogate (PPO / ProMP style), its
            `clip_ratio` and `outer_steps` among the overrides.
        **overrides: `PolicyMAML` arguments that replace the recipe's
            (e.g. `inner_learning_rate=0.1`, `first_order=True`).

    Example:

    ```python
    from tfmeta import rl
    learner = rl.recipes.build_learner("navigation_2d")
    ```
    """
    recipe = get(name)
    if optimizer is not None and max_kl is not None:
        raise ValueError("max_kl is TRPO's KL bound; with another optimizer leave it None")
    keras.utils.set_random_seed(seed)
    family = families.get({**(family_options or {}), "name": name})
    if observe_task:
        family = TaskObserved(family)
    policy = gaussian_mlp_policy(
        family.observation_dim, family.distribution.action_dim, activation="relu"
    )
    options = dict(
        inner_learning_rate=recipe.inner_learning_rate,
        rollouts_per_task=recipe.rollouts_per_task,
        eval_inner_steps=len(recipe.eval_learning_rates),
        eval_inner_learning_rate=list(recipe.eval_learning_rates),
        eval_rollouts_per_task=recipe.eval_rollouts_per_task,
    )
    options.update(overrides)
    learner = PolicyMAML(policy, family, **options)
    if optimizer is None:
        optimizer = TRPO(max_kl=recipe.max_kl if max_kl is None else max_kl)
    learner.compile(optimizer=optimizer)
    return learner
