"""Meta-learners: Keras models whose `fit` meta-trains a wrapped model."""

from tfmeta.learners.anil import ANIL
from tfmeta.learners.base import MetaLearner
from tfmeta.learners.conditional_neural_process import ConditionalNeuralProcess
from tfmeta.learners.fine_tune import FineTune
from tfmeta.learners.gradient_learner import GradientLearner
from tfmeta.learners.maml import MAML
from tfmeta.learners.matching_networks import MatchingNetworks
from tfmeta.learners.meta_sgd import MetaSGD
from tfmeta.learners.proto_maml import ProtoMAML
from tfmeta.learners.protonet import ProtoNet
from tfmeta.learners.r2d2 import R2D2
from tfmeta.learners.relation_network import RelationNetwork
from tfmeta.learners.reptile import Reptile
from tfmeta.learners.support_set_classifier import SupportSetClassifier
