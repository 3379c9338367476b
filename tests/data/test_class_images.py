import numpy as np
import pytest
import tensorflow as tf

import tfmeta.data


def pairs(labels, size=4):
    labels = np.asarray(labels)
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None] * np.ones(
        [1, size, size, 1], np.uint8
    )
    return tf.data.Dataset.from_tensor_slices((images, labels))


def test_from_dataset_groups_images_by_class_sorted_by_name():
    data = tfmeta.data.ClassImages.from_dataset(pairs([2, 0, 2, 1, 0, 2]))
    assert data.base_class_names == ["0", "1", "2"]
    np.testing.assert_array_equal(data.counts, [2, 1, 3])
    # Images keep their order within a class.
    np.testing.assert_array_equal(data.images_of("2")[:, 0, 0, 0], [0, 2, 5])
    np.testing.assert_array_equal(data.images_of("0")[:, 0, 0, 0], [1, 4])
    assert data.image_shape == (4, 4, 1) and data.images.dtype == np.uint8


def test_integer_labels_are_zero_padded_so_names_sort_like_ids():
    data = tfmeta.data.ClassImages.from_dataset(pairs([10, 2, 10, 2]))
    assert data.base_class_names == ["02", "10"]


def test_class_names_map_label_ids_and_string_labels_are_names():
    named = tfmeta.data.ClassImages.from_dataset(pairs([1, 0, 1]), class_names=["zebra", "ant"])
    assert named.base_class_names == ["ant", "zebra"]
    np.testing.assert_array_equal(named.counts, [2, 1])
    strings = tfmeta.data.ClassImages.from_dataset(pairs(np.array([b"b", b"a", b"b"])))
    assert strings.base_class_names == ["a", "b"]


def test_from_dataset_reads_tfds_style_dicts_and_preprocesses():
    images = np.full([3, 10, 8, 3], 255, np.uint8)
    ds = tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": [0, 1, 1], "extra": [0, 0, 0]}
    )
    prep = tfmeta.data.ImagePreprocessing(image_size=5, channels=1, invert=True)
    data = tfmeta.data.ClassImages.from_dataset(ds, preprocessing=prep)
    assert data.image_shape == (5, 5, 1)
    assert data.images.max() == 0  # white paper, inverted


def test_dataset_without_an_image_or_label_feature_is_an_error():
    ds = tf.data.Dataset.from_tensor_slices(
        {"pixels": np.zeros([2, 4, 4, 1], np.uint8), "label": [0, 1]}
    )
    with pytest.raises(
        ValueError,
        match=r"image feature 'image'.*Missing: \['image'\]; received features: "
        r"\['label', 'pixels'\]",
    ):
        tfmeta.data.ClassImages.from_dataset(ds)
    ds = tf.data.Dataset.from_tensor_slices({"image": np.zeros([2, 4, 4, 1], np.uint8)})
    with pytest.raises(ValueError, match=r"Missing: \['label'\]"):
        tfmeta.data.ClassImages.from_dataset(ds)
    with pytest.raises(ValueError, match=r"Expected a dataset of \(image, label\) pairs"):
        tfmeta.data.ClassImages.from_dataset(
            tf.data.Dataset.from_tensor_slices(np.zeros([2, 4, 4, 1]))
        )
    with pytest.raises(ValueError, match=r"Expected scalar integer or string labels"):
        tfmeta.data.ClassImages.from_dataset(pairs(np.zeros([2], np.float32)))


def test_empty_dataset_is_an_error():
    with pytest.raises(ValueError, match=r"at least one example\. Received: an empty dataset"):
        tfmeta.data.ClassImages.from_dataset(pairs(np.array([], np.int64)))


def test_constructor_checks_its_arrays():
    images = np.zeros([3, 4, 4, 1], np.uint8)
    with pytest.raises(ValueError, match=r"Expected at least one class\. Received: 0 classes"):
        tfmeta.data.ClassImages(np.zeros([0, 4, 4, 1], np.uint8), [], [])
    with pytest.raises(ValueError, match=r"Expected unique class names"):
        tfmeta.data.ClassImages(images, [1, 2], ["a", "a"])
    with pytest.raises(ValueError, match=r"sum\(counts\) == number of images"):
        tfmeta.data.ClassImages(images, [1, 1], ["a", "b"])
    with pytest.raises(ValueError, match=r"uint8 array.*Received: dtype=float32"):
        tfmeta.data.ClassImages(images.astype(np.float32), [3], ["a"])
    with pytest.raises(ValueError, match=r"square images for rotations"):
        tfmeta.data.ClassImages(np.zeros([1, 4, 5, 1], np.uint8), [1], ["a"]).with_rotations()
    with pytest.raises(ValueError, match=r"distinct quarter turns.*Received: rotations=\(0, 4\)"):
        tfmeta.data.ClassImages(images, [3], ["a"]).with_rotations((0, 4))


def test_select_and_concatenate_keep_images_with_their_class(toy_class_images):
    data = toy_class_images(num_classes=4, per_class=[1, 2, 3, 4])
    picked = data.select(["class003", "class001"])
    assert picked.base_class_names == ["class003", "class001"]
    np.testing.assert_array_equal(picked.images_of("class003"), data.images_of("class003"))
    pooled = tfmeta.data.ClassImages.concatenate([picked, data.select(["class000"])])
    assert pooled.num_base_classes == 3 and pooled.num_examples == 7
    with pytest.raises(
        ValueError, match=r"distinct class names\. Received shared names: \['class001'\]"
    ):
        tfmeta.data.ClassImages.concatenate([picked, data.select(["class001"])])
    with pytest.raises(ValueError, match=r"Unknown class name 'nope'"):
        data.select(["nope"])


def test_save_and_load_round_trip_atomically(tmp_path, toy_class_images):
    data = toy_class_images(num_classes=3, per_class=[2, 5, 1]).with_rotations((0, 2))
    path = data.save(tmp_path / "sub" / "toy.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.npz"]  # no temporary file left
    loaded = tfmeta.data.ClassImages.load(path)
    np.testing.assert_array_equal(loaded.images, data.images)
    np.testing.assert_array_equal(loaded.counts, data.counts)
    assert loaded.class_names == data.class_names and loaded.rotations == (0, 2)
    with pytest.raises(FileNotFoundError, match=r"Expected a ClassImages \.npz file"):
        tfmeta.data.ClassImages.load(tmp_path / "missing.npz")
