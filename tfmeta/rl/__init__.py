"""tfmeta.rl: meta-reinforcement learning (MAML for policies) on TensorFlow and Gymnasium.

Task families (`Navigation2D` in-graph; HalfCheetah and Ant on Gymnasium's
MuJoCo environments with the `rl` extra, stepped in one process or several:
`processes=N`), policies as Keras models, the
`PolicyMAML` learner (vanilla policy-gradient inner steps through
`tfmeta.adaptation`, TRPO or clipped-surrogate outer updates; with
`inner_steps=0` and `TaskObserved` the paper's pretrained and oracle
baselines), the paper's settings per family (`recipes`), resumable training
(`training.train`) and figures. The SavedModel exporter is `tfmeta.exporters.policy`.
"""

from tfmeta.rl import families, figures, recipes, training
from tfmeta.rl.distributions import Categorical, DiagonalGaussian
from tfmeta.rl.gaussian_head import GaussianHead
from tfmeta.rl.gymnasium_family import GymnasiumTaskFamily, RolloutError
from tfmeta.rl.linear_baseline import LinearFeatureBaseline
from tfmeta.rl.navigation import Navigation2D
from tfmeta.rl.policies import categorical_mlp_policy, gaussian_mlp_policy
from tfmeta.rl.policy_maml import PolicyMAML
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_family import TaskFamily
from tfmeta.rl.task_observed import TaskObserved
from tfmeta.rl.trpo import TRPO

__all__ = [
    "Categorical",
    "DiagonalGaussian",
    "GaussianHead",
    "GymnasiumTaskFamily",
    "LinearFeatureBaseline",
    "Navigation2D",
    "PolicyMAML",
    "RolloutError",
    "Rollouts",
    "TRPO",
    "TaskFamily",
    "TaskObserved",
    "categorical_mlp_policy",
    "families",
    "figures",
    "gaussian_mlp_policy",
    "recipes",
    "training",
]
