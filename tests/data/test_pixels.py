"""The pixel contract of `tfmeta.data`: integers scaled by dtype, floats checked, never clipped."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta.data
from tfmeta.data import pixels

LABELS = np.array([0, 1, 0, 1])


def gradient_images(dtype, top):
    """Four 2x2 images whose pixels run from 0 to `top` (the same ramp in each)."""
    ramp = np.array([[0, 1], [2, 3]], np.float64) / 3 * top
    return np.broadcast_to(ramp[None, :, :, None], [4, 2, 2, 1]).astype(dtype)


@pytest.mark.parametrize(
    "dtype, top, scale",
    [
        (np.uint8, 255, None),
        (np.int64, 255, None),  # numpy's default integers: 0..255
        (np.int32, 255, None),
        (np.uint16, 65535, None),
        (np.float32, 1.0, None),
        (np.float64, 1.0, None),
        (np.float32, 255.0, 1 / 255),
        (np.float16, 2.0, 0.5),
    ],
)
def test_every_dtype_becomes_the_same_uint8_pixels(dtype, top, scale):
    data = tfmeta.data.ClassImages.from_arrays(gradient_images(dtype, top), LABELS, scale=scale)
    np.testing.assert_array_equal(data.images[0, :, :, 0], [[0, 85], [170, 255]])


def test_float_images_in_0_255_are_refused_not_clipped():
    images = gradient_images(np.float32, 255.0)
    with pytest.raises(
        ValueError,
        match=r"^Expected float pixels in \[0, 1\] \(.*\)\. Received: 4 of 4 images outside it "
        r"\(image 0 holds values from 0 to 255\); pass scale=1/255 for float images in 0\.\.255$",
    ):
        tfmeta.data.ClassImages.from_arrays(images, LABELS)
    # The same through a tf.data.Dataset and with preprocessing (which clipped before).
    dataset = tf.data.Dataset.from_tensor_slices((images, LABELS))
    with pytest.raises(ValueError, match=r"pass scale=1/255"):
        tfmeta.data.FewShotEpisodes.from_dataset(
            dataset, preprocessing=tfmeta.data.ImagePreprocessing(image_size=4)
        )


def test_out_of_range_values_name_the_first_bad_image_and_the_fix():
    images = gradient_images(np.float32, 1.0)
    images[2, 0, 0, 0] = -1.0
    with pytest.raises(
        ValueError,
        match=r"Received: 1 of 4 images outside it \(image 2 holds values from -1 to 1\); "
        r"map them to \[0, 1\] first",
    ):
        tfmeta.data.ClassImages.from_arrays(images, LABELS)
    with pytest.raises(ValueError, match=r"in \[0, 1\] after scale=0\.5 .*from 0 to 3"):
        tfmeta.data.ClassImages.from_arrays(gradient_images(np.float32, 3.0), LABELS, scale=0.5)
    nan = gradient_images(np.float32, 1.0)
    nan[3, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"image 3 holds values"):
        tfmeta.data.ClassImages.from_arrays(nan, LABELS)
    wide = gradient_images(np.int64, 1000)
    with pytest.raises(
        ValueError,
        match=r"^Expected int64 pixels in 0\.\.255 .*from 0 to 1000\); cast 16-bit images to",
    ):
        tfmeta.data.ClassImages.from_arrays(wide, LABELS)


@pytest.mark.parametrize(
    "scale, dtype, message",
    [
        (0.0, np.float32, r"Expected `scale` to be a positive finite number\. Received: scale=0"),
        ("1/255", np.float32, r"Received: scale='1/255'"),
        (
            1 / 255,
            np.uint8,
            r"Expected `scale` only for floating-point images: uint8 images are scaled by their "
            r"dtype\. Received: scale=0\.0039",
        ),
    ],
)
def test_bad_scales_are_refused(scale, dtype, message):
    with pytest.raises(ValueError, match=message):
        tfmeta.data.ClassImages.from_arrays(gradient_images(dtype, 1), LABELS, scale=scale)


def test_bool_images_are_refused():
    with pytest.raises(ValueError, match=r"integer or floating-point dtype\. Received: .* bool"):
        tfmeta.data.ClassImages.from_arrays(np.zeros([4, 2, 2, 1], bool), LABELS)


def test_preprocessing_scales_integer_images_by_the_contract():
    """`ImagePreprocessing` itself: int64 0..255 is not divided by int64's maximum."""
    image = tf.constant(np.full([4, 4, 1], 200, np.int64))
    out = tfmeta.data.ImagePreprocessing(image_size=4, resize_method="area")(image)
    np.testing.assert_array_equal(out.numpy(), 200)


def test_to_unit_float_matches_the_dtype_ranges():
    np.testing.assert_allclose(pixels.to_unit_float(tf.constant([0, 65535], tf.uint16)), [0, 1])
    np.testing.assert_allclose(pixels.to_unit_float(tf.constant([51], tf.int32)), [0.2])
    np.testing.assert_allclose(pixels.to_unit_float(tf.constant([51.0]), scale=1 / 255), [0.2])


def test_from_arrays_checks_lengths_and_keeps_string_labels():
    with pytest.raises(
        ValueError,
        match=r"of the same length\. Received: images\.shape=\(4, 2, 2, 1\), labels\.shape=\(3,\)",
    ):
        tfmeta.data.ClassImages.from_arrays(gradient_images(np.uint8, 255), LABELS[:3])
    data = tfmeta.data.ClassImages.from_arrays(
        gradient_images(np.uint8, 255)[..., 0], np.array(["b", "a", "b", "a"])
    )
    assert data.base_class_names == ["a", "b"] and data.image_shape == (2, 2, 1)
