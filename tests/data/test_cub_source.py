"""CUB-200-2011 with Chen et al.'s 100 / 50 / 50 split, from the extracted folder and TFDS."""

import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfmeta.data
from benchmark_layouts import red_values, write_cub


@pytest.fixture(scope="module")
def cub_folder(tmp_path_factory):
    return write_cub(tmp_path_factory.mktemp("cub"), per_class=2)


def test_split_follows_the_sorted_folder_rule():
    folders = [f"{n:03d}.Bird" for n in range(1, 201)]
    split = tfmeta.data.cub_split(folders)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [100, 50, 50]
    assert split["train"][:2] == ["001.Bird", "003.Bird"]
    assert split["validation"][:2] == ["002.Bird", "006.Bird"]
    assert split["test"][:2] == ["004.Bird", "008.Bird"]


def test_cub_sources_from_each_folder_level(cub_folder, tmp_path):
    for data_dir in (cub_folder, cub_folder / "images", cub_folder.parent):
        sources = tfmeta.data.cub(data_dir, image_size=8, cache_dir=tmp_path)
        assert [sources[k].num_classes for k in ("train", "validation", "test")] == [100, 50, 50]
    source = sources["validation"]
    assert source.class_names[0] == "002.Bird_002"
    batch = next(iter(source.episodes(ways=5, shots=1, queries=1, seed=0)))
    # Red holds the class number (JPEG may move it by one): validation numbers are 2 mod 4.
    for value in red_values(batch["support_x"].numpy()):
        assert any(n % 4 == 2 for n in range(value - 1, value + 2)), value


def test_missing_classes_are_named_by_number(cub_folder, tmp_path):
    copy = tmp_path / "CUB_200_2011"
    shutil.copytree(cub_folder, copy)
    shutil.rmtree(copy / "images" / "017.Bird_017")
    with pytest.raises(FileNotFoundError, match=r"Missing: 1 classes numbered \['017'\]"):
        tfmeta.data.cub(copy, image_size=8, cache=False)


def _fake_caltech_birds2011(labels):
    """An `as_dataset_fn` for `tfds.testing.mock_data`: 10x12 images of the given TFDS labels,
    red = label + 1 (the class folder's number, as TFDS's builder derives its labels)."""

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        assert str(split) == "train+test"
        values = np.asarray(labels, np.int64)
        images = np.zeros([len(values), 10, 12, 3], np.uint8)
        images[..., 0] = (values + 1)[:, None, None]
        ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": values})
        if decoders and "image" in decoders:  # the reader decodes the encoded bytes itself
            ds = ds.map(lambda ex: {**ex, "image": tf.io.encode_png(ex["image"])})
        return ds

    return as_dataset


@pytest.fixture
def prepared_tfds(monkeypatch):
    """Mocks TFDS's caltech_birds2011 as prepared (mock_data leaves `is_prepared()` False)."""
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)


def test_tfds_caltech_birds2011_gives_the_folder_split(prepared_tfds, cub_folder, tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=_fake_caltech_birds2011(np.repeat(range(200), 2))):
        sources = tfmeta.data.cub(tfds_data_dir=tmp_path, image_size=8, cache=False)
    folder = tfmeta.data.cub(cub_folder, image_size=8, cache_dir=tmp_path)
    splits = ("train", "validation", "test")
    assert [sources[k].num_classes for k in splits] == [100, 50, 50]
    names = [set(sources[k].class_names) for k in splits]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    for split in splits:  # the same classes, by number, as the folder reader's
        assert sources[split].class_names == [n[:3] for n in folder[split].class_names]
    number = sources["test"].class_names[0]
    assert number == "004"
    assert np.all(sources["test"].class_images.images_of(number)[..., 0] == 4)


def test_tfds_caltech_birds2011_missing_labels_are_named(prepared_tfds, tmp_path):
    labels = np.repeat([n for n in range(200) if n != 16], 2)
    with tfds.testing.mock_data(as_dataset_fn=_fake_caltech_birds2011(labels)):
        with pytest.raises(FileNotFoundError, match=r"Missing: 1 classes numbered \['017'\]"):
            tfmeta.data.cub(tfds_data_dir=tmp_path, image_size=8, cache=False)


def test_tfds_caltech_birds2011_unprepared_is_not_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"caltech_birds2011 prepared in .*download=True"):
        tfmeta.data.cub(tfds_data_dir=tmp_path / "absent", cache=False)
