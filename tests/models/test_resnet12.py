"""ResNet-12: shapes and the published parameter count."""

import pytest
import tensorflow as tf

import tfmeta


def _expected_params(widths, channels=3, head=None):
    """Convs without bias (3 per block + a 1x1 shortcut), 4 BatchNorms of 4 values per channel."""
    total, previous = 0, channels
    for width in widths:
        total += 9 * previous * width + 2 * 9 * width * width + previous * width + 16 * width
        previous = width
    return total + (0 if head is None else previous * head + head)


def test_standard_resnet12_has_metaoptnets_12_4_million_parameters():
    model = tfmeta.models.resnet12((84, 84, 3))
    assert model.count_params() == _expected_params((64, 160, 320, 640)) == 12_433_792
    assert model.output_shape == (None, 640)
    pools = [layer for layer in model.layers
             if layer.name.endswith("_pool") and "block" in layer.name]
    assert [p.output.shape[1] for p in pools] == [42, 21, 10, 5]


def test_small_resnet12_with_head_runs_on_cifar_sized_images():
    model = tfmeta.models.resnet12((32, 32, 3), num_classes=5, widths=(4, 8, 8, 16))
    assert model.count_params() == _expected_params((4, 8, 8, 16), head=5)
    assert model(tf.zeros((2, 32, 32, 3))).shape == (2, 5)


def test_bad_widths_are_refused():
    with pytest.raises(ValueError, match="four positive channel widths"):
        tfmeta.models.resnet12(widths=(64, 128))
