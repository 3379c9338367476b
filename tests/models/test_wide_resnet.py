"""WRN-28-10: the published parameter count and shapes."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta


def _trainable(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def test_wrn_28_10_has_the_published_36_5_million_trainable_parameters():
    # Zagoruyko & Komodakis's WRN-28-10 on CIFAR-10: 36,479,194 (PyTorch counts the trainable
    # ones; Keras adds BatchNorm's two moving statistics per channel, 8,976 channels).
    model = tfmeta.models.wide_resnet((32, 32, 3), num_classes=10)
    assert _trainable(model) == 36_479_194
    assert model.count_params() == 36_479_194 + 2 * 8_976


def test_embedding_shape_and_a_small_variant_runs():
    assert tfmeta.models.wide_resnet((84, 84, 3)).output_shape == (None, 640)
    small = tfmeta.models.wide_resnet((16, 16, 3), num_classes=3, depth=10, width=1)
    assert small(tf.zeros((2, 16, 16, 3))).shape == (2, 3)
    assert small.get_layer("group2_block0_conv0").output.shape[1:3] == (4, 4)


def test_bad_depth_is_refused():
    with pytest.raises(ValueError, match="depth = 6n \\+ 4"):
        tfmeta.models.wide_resnet(depth=27)
