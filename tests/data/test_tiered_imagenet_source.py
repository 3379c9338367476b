"""tieredImageNet from a copy laid out by split or an ILSVRC train folder; what is missing named."""

import shutil

import pytest

import tfmeta.data
from benchmark_layouts import write_mini_imagenet_folders


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory):
    root = tmp_path_factory.mktemp("ilsvrc")
    return write_mini_imagenet_folders(root, per_class=3, by_split=False,
                                       benchmark="tiered_imagenet")


def test_ilsvrc_folder_gives_the_published_split(ilsvrc, tmp_path):
    sources = tfmeta.data.tiered_imagenet(ilsvrc, image_size=8, images_per_class=2,
                                          cache_dir=tmp_path)
    split = tfmeta.data.published_split("tiered_imagenet")
    for name, source in sources.items():
        assert source.class_names == sorted(split[name])
        assert source.class_images.num_examples == 2 * len(split[name])
    batch = next(iter(sources["validation"].episodes(ways=5, shots=1, queries=1, seed=0)))
    assert batch["support_x"].shape == (5, 8, 8, 3)


def test_split_folders_with_and_without_a_cap(tmp_path):
    root = write_mini_imagenet_folders(tmp_path / "copy", per_class=2,
                                       benchmark="tiered_imagenet")
    full = tfmeta.data.tiered_imagenet(root, image_size=8, cache=False)
    assert full["test"].class_images.num_examples == 2 * 160
    capped = tfmeta.data.tiered_imagenet(root, image_size=8, images_per_class=1, cache=False)
    assert capped["train"].class_images.num_examples == 351


def test_missing_class_and_pickles_are_named(ilsvrc, tmp_path):
    copy = tmp_path / "train"
    shutil.copytree(ilsvrc, copy)
    shutil.rmtree(copy / "n07768694")
    with pytest.raises(FileNotFoundError, match=r"Missing: 1 classes, \['n07768694'\]"):
        tfmeta.data.tiered_imagenet(copy, image_size=8, cache=False)
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "train_images_png.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(FileNotFoundError, match="never reads"):
        tfmeta.data.tiered_imagenet(tmp_path / "pickled")
    with pytest.raises(ValueError, match="never reads pickle files"):
        tfmeta.data.tiered_imagenet(tmp_path / "pickled" / "train_images_png.pkl")
