"""The per-class image cap shared by the ImageNet folder and tar layouts."""

import pytest

from tfmeta.data.imagenet_layouts import first_images


def test_the_first_images_of_a_class_are_taken_in_order():
    assert first_images(["a", "b", "c"], 2, "'n01'") == ["a", "b"]
    assert first_images(["a", "b", "c"], None, "'n01'") == ["a", "b", "c"]


def test_a_class_with_fewer_images_than_asked_is_refused_naming_where():
    with pytest.raises(
        FileNotFoundError, match=r"at least images_per_class=3 images in 'n01/'\. Received: 2"
    ):
        first_images(["a", "b"], 3, "'n01/'")
