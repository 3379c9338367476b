"""Omniglot: the real data (../shared/data/omniglot/omniglot.tar.gz) through tfds.ImageFolder,
and the official TFDS builder path through tfds.testing.mock_data."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfmeta.data
from tfmeta.data.episode import EPISODE_KEYS


def base_names(source):
    return {name.split("@")[0] for name in source.class_names}


def test_official_sets_hold_964_and_659_characters_of_20_drawings(omniglot_sets):
    assert omniglot_sets["train"].num_classes == 964
    assert omniglot_sets["test"].num_classes == 659
    for images in omniglot_sets.values():
        assert set(images.counts) == {20}
        assert images.image_shape == (28, 28, 1) and images.images.dtype == np.uint8
    assert omniglot_sets["train"].base_class_names[0] == "Alphabet_of_the_Magi__character01"
    assert not set(omniglot_sets["train"].base_class_names) & set(
        omniglot_sets["test"].base_class_names
    )


def test_vinyals_protocol_split_sizes_with_rotations(omniglot_vinyals):
    assert {k: v.num_classes for k, v in omniglot_vinyals.items()} == {
        "train": 4400,
        "validation": 400,
        "test": 1692,
    }
    assert {k: len(base_names(v)) for k, v in omniglot_vinyals.items()} == {
        "train": 1100,
        "validation": 100,
        "test": 423,
    }


def test_lake_protocol_is_background_versus_evaluation(omniglot_lake, omniglot_sets):
    assert {k: v.num_classes for k, v in omniglot_lake.items()} == {
        "train": 964 * 4,
        "test": 659 * 4,
    }
    assert base_names(omniglot_lake["train"]) == set(omniglot_sets["train"].base_class_names)


@pytest.mark.parametrize("protocol", ["vinyals", "lake"])
def test_no_character_appears_in_two_splits(protocol, omniglot_vinyals, omniglot_lake):
    sources = omniglot_vinyals if protocol == "vinyals" else omniglot_lake
    names = [base_names(source) for source in sources.values()]
    assert sum(len(n) for n in names) == len(set.union(*names)) == 1623


def test_without_rotations_and_with_unshuffled_split(omniglot_dir, omniglot_sets, data_cache_dir):
    sources = tfmeta.data.omniglot(
        omniglot_dir, rotations=False, split_seed=None, cache_dir=data_cache_dir
    )
    assert {k: v.num_classes for k, v in sources.items()} == {
        "train": 1100,
        "validation": 100,
        "test": 423,
    }
    # split_seed=None deals the characters in name order: whole alphabets per split.
    names = sorted(omniglot_sets["train"].base_class_names + omniglot_sets["test"].base_class_names)
    assert sources["train"].class_names == names[:1100]
    assert sources["test"].class_names == names[1200:]


def test_vinyals_split_is_the_same_on_every_load(omniglot_dir, omniglot_vinyals, data_cache_dir):
    again = tfmeta.data.omniglot(omniglot_dir, cache_dir=data_cache_dir)
    for split in ("train", "validation", "test"):
        assert again[split].class_names == omniglot_vinyals[split].class_names


def test_the_tarball_itself_is_accepted(omniglot_tarball, omniglot_sets, data_cache_dir):
    sources = tfmeta.data.omniglot(
        omniglot_tarball, "lake", rotations=False, cache_dir=data_cache_dir
    )
    assert sources["test"].num_classes == 659


def test_images_are_float_strokes_one_paper_zero(omniglot_vinyals):
    episode = next(iter(omniglot_vinyals["train"].episodes(5, 1, 15, seed=0)))
    x = episode["query_x"].numpy()
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert x.mean() < 0.2  # mostly paper
    assert np.median(x) == 0.0


@pytest.mark.parametrize("ways, shots", [(5, 1), (20, 5)])
def test_meta_batches_of_episodes(omniglot_vinyals, ways, shots):
    dataset = omniglot_vinyals["test"].episodes(ways, shots, 15, meta_batch_size=32, seed=0)
    batch = next(iter(dataset))
    assert batch["support_x"].shape == (32, ways * shots, 28, 28, 1)
    assert batch["query_x"].shape == (32, ways * 15, 28, 28, 1)
    assert batch["support_y"].dtype == tf.int32
    for task in range(32):
        assert np.bincount(batch["support_y"][task].numpy()).tolist() == [shots] * ways
        assert np.bincount(batch["query_y"][task].numpy()).tolist() == [15] * ways
    # Support and query never share a drawing. Omniglot holds one pair of identical drawings
    # (Braille character01), so count: no drawing may be picked more often than it is stored.
    stored = collections.Counter(
        image.tobytes()
        for k in range(4)
        for image in tf.image.rot90(omniglot_vinyals["test"].class_images.images, k).numpy()
    )
    for task in range(32):
        for label in range(ways):
            drawings = np.concatenate(
                [
                    batch["support_x"][task, label * shots : (label + 1) * shots],
                    batch["query_x"][task, label * 15 : (label + 1) * 15],
                ]
            )
            picked = collections.Counter(
                np.rint(d * 255).astype(np.uint8).tobytes() for d in drawings
            )
            assert all(stored[d] >= n for d, n in picked.items())


def test_same_seed_same_episodes_on_real_data(omniglot_vinyals):
    def take(seed):
        return next(
            iter(omniglot_vinyals["train"].episodes(20, 1, 5, meta_batch_size=4, seed=seed))
        )

    a, b, c = take(3), take(3), take(4)
    for key in EPISODE_KEYS:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
    assert not np.array_equal(a["support_x"].numpy(), c["support_x"].numpy())


def test_more_ways_than_validation_classes_is_an_error(omniglot_vinyals):
    with pytest.raises(
        ValueError,
        match=r"^Expected ways <= 400 classes in 'omniglot/vinyals/validation'\. "
        r"Received: ways=500$",
    ):
        omniglot_vinyals["validation"].episodes(ways=500, shots=1, queries=1)
    with pytest.raises(ValueError, match=r"at least shots \+ queries = 21 images"):
        omniglot_vinyals["train"].episodes(ways=5, shots=1, queries=20)


def test_unknown_protocol_lists_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"Unknown Omniglot protocol 'snell'\. Expected one of \['vinyals', 'lake'\]",
    ):
        tfmeta.data.omniglot("unused", protocol="snell")


def test_missing_data_dir_raises(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"Omniglot ImageFolder directory .*which does not exist"
    ):
        tfmeta.data.omniglot(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"with train/ and test/ folders"):
        tfmeta.data.omniglot(tmp_path)


# ---- The official TFDS `omniglot` builder, mocked ------------------------------------------------


def fake_omniglot(num_train, num_test, per_class=2, size=14):
    """An `as_dataset_fn` in the official builder's layout: labels 0.. for train, then test."""

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        first, count = (0, num_train) if str(split) == "train" else (num_train, num_test)
        labels = np.repeat(np.arange(first, first + count), per_class)
        images = np.full([len(labels), size, size, 3], 255, np.uint8)
        images[np.arange(len(labels)), :, np.arange(len(labels)) % size] = 0
        ds = tf.data.Dataset.from_tensor_slices(
            {
                "image": images,
                "label": labels,
                "alphabet": labels % 50,
                "alphabet_char_id": labels % 20,
            }
        )
        if decoders and "image" in decoders:
            ds = ds.map(lambda ex: {**ex, "image": tf.io.encode_png(ex["image"])})
        return ds

    return as_dataset


def test_official_builder_lake_protocol(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=fake_omniglot(num_train=9, num_test=6)):
        sources = tfmeta.data.omniglot(None, "lake", cache_dir=tmp_path)
    assert {k: v.num_classes for k, v in sources.items()} == {"train": 36, "test": 24}
    episode = next(iter(sources["test"].episodes(5, 1, 1, meta_batch_size=2, seed=0)))
    assert episode["support_x"].shape == (2, 5, 28, 28, 1)


def test_official_builder_vinyals_protocol_needs_all_1623_characters(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=fake_omniglot(num_train=964, num_test=659)):
        sources = tfmeta.data.omniglot(None, "vinyals", image_size=14, cache=False)
    assert {k: v.num_classes for k, v in sources.items()} == {
        "train": 4400,
        "validation": 400,
        "test": 1692,
    }
    with tfds.testing.mock_data(as_dataset_fn=fake_omniglot(num_train=9, num_test=6)):
        with pytest.raises(
            ValueError,
            match=r"Expected the 1623 Omniglot characters for the 'vinyals' "
            r"protocol\. Received: 15 classes \(9 train \+ 6 test\)",
        ):
            tfmeta.data.omniglot(None, "vinyals", cache=False)


def test_builder_label_names_become_folder_style_names():
    from tfmeta.data.omniglot_protocols import _with_folder_names

    images = tfmeta.data.ClassImages(
        np.zeros([2, 4, 4, 1], np.uint8), [1, 1], ["Alphabet_of_the_Magi_0", "Tifinagh_54"]
    )
    assert _with_folder_names(images).base_class_names == [
        "Alphabet_of_the_Magi__character01",
        "Tifinagh__character55",
    ]
