"""CUB-200-2011 with Chen et al.'s 100 / 50 / 50 split, from the extracted folder."""

import shutil

import pytest

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
