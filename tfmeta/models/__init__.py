"""Reference networks of the meta-learning literature, as built Keras models."""

from tfmeta.models.conv4 import conv4
from tfmeta.models.mlp import mlp
from tfmeta.models.relation_module import relation_embedding, relation_module
from tfmeta.models.neural_process import cnp_decoder, cnp_encoder
from tfmeta.models.resnet12 import resnet12
from tfmeta.models.wide_resnet import wide_resnet
