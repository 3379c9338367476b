import numpy as np
import pytest
import tensorflow as tf

import tfmeta.data


def test_resizes_converts_channels_and_keeps_uint8():
    rgb = tf.constant(np.full([105, 105, 3], 200, np.uint8))
    gray = tfmeta.data.ImagePreprocessing(image_size=28, channels=1)(rgb)
    assert gray.shape == (28, 28, 1) and gray.dtype == tf.uint8
    assert np.all(np.abs(gray.numpy().astype(int) - 200) <= 1)
    color = tfmeta.data.ImagePreprocessing(image_size=(84, 42), channels=3)(gray)
    assert color.shape == (84, 42, 3)


def test_invert_makes_strokes_bright_and_paper_dark():
    image = np.full([20, 20, 1], 255, np.uint8)  # white paper
    image[5:15, 9:11] = 0  # a black stroke
    out = tfmeta.data.ImagePreprocessing(image_size=20, invert=True)(image).numpy()
    assert out[0, 0, 0] == 0 and out[10, 10, 0] == 255


def test_floats_in_unit_range_and_2d_images_are_accepted():
    out = tfmeta.data.ImagePreprocessing(image_size=4, resize_method="area")(tf.ones([8, 8]))
    assert out.shape == (4, 4, 1) and out.numpy().min() == 255


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image_size=0), r"image_size to be a positive int.*Received: image_size=0"),
        (dict(image_size=(28, 28, 1)), r"Received: image_size=\(28, 28, 1\)"),
        (dict(channels=2), r"channels to be 1 \(grayscale\) or 3 \(RGB\)\. Received: channels=2"),
        (
            dict(resize_method="cubic"),
            r"`resize_method` to be one of .*Received: resize_method='cubic'",
        ),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfmeta.data.ImagePreprocessing(**kwargs)


def test_bad_image_shapes_raise():
    with pytest.raises(
        ValueError, match=r"1, 3 or 4 channels\. Received: image\.shape=\(4, 4, 2\)"
    ):
        tfmeta.data.ImagePreprocessing(image_size=4)(tf.zeros([4, 4, 2], tf.uint8))
