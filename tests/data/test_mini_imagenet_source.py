"""mini-ImageNet from the three layouts users hold; missing, corrupt and pickled data refused."""

import numpy as np
import pytest

import tfmeta.data
from benchmark_layouts import (
    mini_imagenet_wnids,
    red_values,
    write_mini_imagenet_csv_layout,
    write_mini_imagenet_folders,
)


@pytest.fixture(scope="module")
def csv_layout(tmp_path_factory):
    return write_mini_imagenet_csv_layout(tmp_path_factory.mktemp("mini_imagenet"))


def _check_published_split(sources):
    split = tfmeta.data.published_split("mini_imagenet")
    assert sorted(sources) == ["test", "train", "validation"]
    for name, source in sources.items():
        assert source.class_names == sorted(split[name])
        assert source.image_shape == (8, 8, 3)


def test_csv_layout_gives_the_published_split_and_episodes_of_its_classes(csv_layout, tmp_path):
    sources = tfmeta.data.mini_imagenet(csv_layout, image_size=8, cache_dir=tmp_path)
    _check_published_split(sources)
    test = sources["test"]
    batch = next(iter(test.episodes(ways=5, shots=1, queries=1, meta_batch_size=2, seed=0)))
    assert batch["support_x"].shape == (2, 5, 8, 8, 3)
    assert set(batch["query_y"].numpy().ravel()) == set(range(5))
    # Every image comes from a test class (its red value is the class's position, 80..99).
    positions = red_values(batch["support_x"].numpy().reshape(-1, 8, 8, 3))
    assert np.all((positions >= 78) & (positions <= 101)), positions


def test_split_folders_and_ilsvrc_layouts(tmp_path):
    by_split = write_mini_imagenet_folders(tmp_path / "by_split", per_class=2)
    _check_published_split(tfmeta.data.mini_imagenet(by_split, image_size=8, cache=False))
    ilsvrc = write_mini_imagenet_folders(tmp_path / "ilsvrc", per_class=3, by_split=False)
    (ilsvrc / "n99999999").mkdir()  # ILSVRC holds 900 other classes
    sources = tfmeta.data.mini_imagenet(ilsvrc, image_size=8, images_per_class=2, cache=False)
    _check_published_split(sources)
    assert sources["train"].class_images.num_examples == 64 * 2


def test_missing_split_file_class_and_images_are_named(csv_layout, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(csv_layout, root)
    (root / "val.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"Missing: \['val.csv'\]"):
        tfmeta.data.mini_imagenet(root, image_size=8, cache=False)
    shutil.copy(csv_layout / "val.csv", root / "val.csv")
    (root / "images" / "n0193011200000005.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="n0193011200000005.jpg") as error:
        tfmeta.data.mini_imagenet(root, image_size=8, cache=False)
    assert str(root / "images") in str(error.value)
    ilsvrc = write_mini_imagenet_folders(tmp_path / "ilsvrc", per_class=1, by_split=False)
    shutil.rmtree(ilsvrc / "n07613480")
    with pytest.raises(FileNotFoundError, match=r"Missing: 1 classes, \['n07613480'\]"):
        tfmeta.data.mini_imagenet(ilsvrc, image_size=8, images_per_class=1, cache=False)


def test_csv_with_other_classes_is_refused(csv_layout, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(csv_layout, root)
    text = (root / "test.csv").read_text().replace(",n07613480", ",n01440764")
    (root / "test.csv").write_text(text)
    missing = r"not in the split: \['n01440764'\]; missing: \['n07613480'\]"
    with pytest.raises(ValueError, match=missing):
        tfmeta.data.mini_imagenet(root, image_size=8, cache=False)


def test_corrupt_image_is_named(csv_layout, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(csv_layout, root)
    (root / "images" / "n0193011200000012.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="n0193011200000012.jpg"):
        tfmeta.data.mini_imagenet(root, image_size=8, cache=False)


def test_pickles_are_never_read(tmp_path):
    pickle = tmp_path / "mini-imagenet-cache-train.pkl"
    pickle.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ValueError, match="never reads pickle files"):
        tfmeta.data.mini_imagenet(pickle)
    with pytest.raises(FileNotFoundError, match="pickle files .*never reads"):
        tfmeta.data.mini_imagenet(tmp_path)


def test_layout_names_match_the_published_wnids():
    assert len(set(mini_imagenet_wnids())) == 100
