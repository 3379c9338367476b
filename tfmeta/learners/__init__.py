"""Meta-learners: Keras models whose `fit` meta-trains a wrapped model."""

from tfmeta.learners.base import MetaLearner
from tfmeta.learners.maml import MAML
