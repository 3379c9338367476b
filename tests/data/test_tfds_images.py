"""Reading TFDS datasets: official builders (through tfds.testing.mock_data) and ImageFolder."""

import socket
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfmeta.data
import tfmeta.data.tfds_images

PREP = tfmeta.data.ImagePreprocessing(image_size=8, channels=1, invert=True)


def fake_builder_dataset(num_classes, per_class, size=12):
    """An `as_dataset_fn` for `tfds.testing.mock_data`: `per_class` images of each label."""

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        labels = np.repeat(np.arange(num_classes), per_class)
        images = np.zeros([len(labels), size, size, 3], np.uint8)
        images[:, :, :, :] = 255
        images[np.arange(len(labels)), labels % size, :, :] = 0  # a stroke at row `label`
        ds = tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": labels, "alphabet": labels % 50, "alphabet_char_id": labels}
        )
        if decoders and "image" in decoders:  # tfds.decode.SkipDecoding(): encoded bytes
            ds = ds.map(lambda ex: {**ex, "image": tf.io.encode_png(ex["image"])})
        return ds

    return as_dataset


def test_official_builder_path_reads_labels_as_classes(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=fake_builder_dataset(num_classes=7, per_class=4)):
        data = tfmeta.data.tfds_class_images(
            "omniglot", "train", preprocessing=PREP, cache_dir=tmp_path
        )
    assert data.num_classes == 7 and data.image_shape == (8, 8, 1)
    np.testing.assert_array_equal(data.counts, [4] * 7)
    # Inverted: the black stroke of class 3 is bright, the paper dark.
    assert data.images_of(data.base_class_names[3]).max() > 128
    assert data.images.mean() < 64


def test_official_builder_path_with_random_mock_data():
    with tfds.testing.mock_data(num_examples=40):
        data = tfmeta.data.tfds_class_images("omniglot", "test", preprocessing=PREP, cache=False)
    assert data.num_examples == 40 and data.image_shape == (8, 8, 1)
    assert data.num_base_classes <= 40


def test_tfds_source_yields_episodes(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=fake_builder_dataset(num_classes=6, per_class=5)):
        source = tfmeta.data.FewShotEpisodes.from_tfds(
            "omniglot", "train", preprocessing=PREP, cache=False
        )
    episode = next(iter(source.episodes(ways=3, shots=2, queries=3, seed=0)))
    assert episode["support_x"].shape == (6, 8, 8, 1) and episode["query_y"].shape == (9,)


def test_builder_results_are_cached_on_disk(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=fake_builder_dataset(num_classes=3, per_class=2)):
        first = tfmeta.data.tfds_class_images(
            "omniglot", "train", preprocessing=PREP, cache_dir=tmp_path
        )
    cached = list((tmp_path / "class_images").glob("omniglot-train-*.npz"))
    assert len(cached) == 1

    def must_not_read(*args, **kwargs):
        raise AssertionError("decoded again instead of using the cache")

    with tfds.testing.mock_data(as_dataset_fn=must_not_read):
        again = tfmeta.data.tfds_class_images(
            "omniglot", "train", preprocessing=PREP, cache_dir=tmp_path
        )
    np.testing.assert_array_equal(again.images, first.images)


def test_unknown_tfds_name_lists_close_valid_names():
    with pytest.raises(
        ValueError,
        match=r"Unknown TFDS dataset name 'omniglt'\. Close matches: "
        r"\['omniglot'.*registered names \(tfds\.list_builders\(\)\)",
    ):
        tfmeta.data.tfds_class_images("omniglt", "train", cache=False)


def test_tfds_dataset_without_image_or_label_feature_is_an_error():
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(
            ValueError,
            match=r"'celeb_a' to have an image feature 'image' and a label feature "
            r"'label'\. Missing: \['label'\]; received features: \[",
        ):
            tfmeta.data.tfds_class_images("celeb_a", "train", cache=False)
        with pytest.raises(
            ValueError, match=r"Missing: \['image'\].*supervised_keys are \('text', 'label'\)"
        ):
            tfmeta.data.tfds_class_images("imdb_reviews", "train", cache=False)


def test_empty_tfds_split_is_an_error():
    with tfds.testing.mock_data(as_dataset_fn=fake_builder_dataset(num_classes=0, per_class=1)):
        with pytest.raises(
            ValueError,
            match=r"Expected split 'train' of 'omniglot' to hold at least one "
            r"example\. Received: an empty split",
        ):
            tfmeta.data.tfds_class_images("omniglot", "train", preprocessing=PREP, cache=False)


def write_image_folder(root, splits):
    for split, classes in splits.items():
        for name, count in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = np.full([10, 10, 3], 255, np.uint8)
                image[i % 10] = 0
                (folder / f"{i:02d}.png").write_bytes(tf.io.encode_png(image).numpy())


def test_image_folder_classes_are_folder_names_and_decoding_is_cached(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "data", {"train": {"b": 3, "a": 2}, "test": {"c": 4}})
    data = tfmeta.data.image_folder_class_images(
        tmp_path / "data", "train", preprocessing=PREP, cache_dir=tmp_path / "cache"
    )
    assert data.base_class_names == ["a", "b"] and list(data.counts) == [2, 3]
    monkeypatch.setattr(tfds, "ImageFolder", None)  # a second load must not decode
    again = tfmeta.data.image_folder_class_images(
        tmp_path / "data", "train", preprocessing=PREP, cache_dir=tmp_path / "cache"
    )
    np.testing.assert_array_equal(again.images, data.images)


def test_image_folder_missing_root_or_split_raises(tmp_path):
    write_image_folder(tmp_path / "data", {"train": {"a": 1}})
    with pytest.raises(
        FileNotFoundError, match=r"Expected an ImageFolder directory.*which does not exist"
    ):
        tfmeta.data.image_folder_class_images(tmp_path / "nope", "train", cache=False)
    with pytest.raises(
        FileNotFoundError, match=r"Expected split 'validation'.*Received splits: \['train'\]"
    ):
        tfmeta.data.image_folder_class_images(tmp_path / "data", "validation", cache=False)


def test_unknown_split_of_a_prepared_builder_lists_the_valid_ones(tmp_path):
    write_image_folder(tmp_path / "data", {"train": {"a": 1}, "test": {"b": 1}})
    builder = tfds.ImageFolder(str(tmp_path / "data"))
    with pytest.raises(
        ValueError,
        match=r"Unknown split 'validation' of TFDS dataset 'image_folder'\. "
        r"Expected one of \['test', 'train'\]",
    ):
        tfmeta.data.tfds_class_images(builder, "train+validation", cache=False)
    data = tfmeta.data.tfds_class_images(builder, "test", preprocessing=PREP, cache=False)
    assert data.base_class_names == ["b"]


def test_a_split_of_only_unsupported_image_types_names_them(tmp_path):
    for label in ("a", "b"):
        folder = tmp_path / "data" / "train" / label
        folder.mkdir(parents=True)
        (folder / "1.tif").write_bytes(b"II*\0")
        (folder / "2.bmp").write_bytes(b"BM")
    with pytest.raises(
        ValueError,
        match=r"Expected images of type \['.jpg', '.jpeg', '.png'\] in .*train.*"
        r"only files of type \['.bmp', '.tif'\]; convert them",
    ):
        tfmeta.data.image_folder_class_images(tmp_path / "data", "train", cache_dir=tmp_path)
    assert not (tmp_path / "class_images").exists()


# The real probe (the autouse fixture of conftest.py makes downloads reachable).
UNREACHABLE_HOSTS = tfmeta.data.tfds_images.unreachable_hosts


def _offline(monkeypatch, delay=0.0):
    """No network: connections fail (after `delay` seconds, as an unanswered lookup would)."""

    def refuse(address, timeout=None):
        time.sleep(min(delay, timeout or delay))
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tfmeta.data.tfds_images, "unreachable_hosts", UNREACHABLE_HOSTS)


def test_unreachable_hosts_are_named_within_the_timeout(monkeypatch):
    _offline(monkeypatch, delay=30)
    start = time.monotonic()
    unreachable = UNREACHABLE_HOSTS(["https://a.example/x", "http://b.example:8080/y"], timeout=0.5)
    assert time.monotonic() - start < 5
    assert set(unreachable) == {"a.example", "b.example"}


def test_an_unprepared_tfds_dataset_offline_fails_fast_naming_the_alternatives(
    monkeypatch, tmp_path
):
    _offline(monkeypatch)
    start = time.monotonic()
    with pytest.raises(
        ConnectionError,
        match=r"^TFDS dataset 'mnist' is not prepared in '.*' and its download host "
        r"storage\.googleapis\.com cannot be reached \(.*Network is unreachable\)\. Prepare it "
        r"where there is a network \(`tfds build mnist`\) and pass its data_dir, or read the "
        r"images from a folder <root>/<split>/<class>/<image> .*from_image_folder",
    ):
        tfmeta.data.tfds_class_images("mnist", "train", data_dir=tmp_path)
    assert time.monotonic() - start < 30  # TFDS's own retries took 207 s here
