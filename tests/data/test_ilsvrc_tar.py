"""mini-ImageNet and tieredImageNet from ILSVRC-2012's train tar (TFDS's imagenet2012 manual
directory), unextracted: the extracted folder's arrays and episodes; what is missing or damaged
named."""

import io
import os
import shutil
import tarfile

import numpy as np
import pytest

import tfmeta.data
from benchmark_layouts import (
    class_tar,
    write_ilsvrc_train_tar,
    write_jpeg,
    write_mini_imagenet_folders,
    write_tar,
)

TRAIN_TAR = "ILSVRC2012_img_train.tar"


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory):
    """An extracted ILSVRC train folder of mini-ImageNet's classes (3 images each, each image of
    its own colour, so that taking other images shows) and one other class."""
    root = write_mini_imagenet_folders(tmp_path_factory.mktemp("ilsvrc"), per_class=3,
                                       by_split=False)
    for value, path in enumerate(sorted(root.glob("*/*.JPEG"))):
        write_jpeg(path, value % 256)
    write_jpeg(root / "n01440764" / "n01440764_1.JPEG", 0)  # one of ILSVRC's 900 other classes
    return root


@pytest.fixture(scope="module")
def manual_dir(ilsvrc, tmp_path_factory):
    return write_ilsvrc_train_tar(tmp_path_factory.mktemp("manual"), ilsvrc).parent


def _assert_same(sources, expected):
    for split, source in expected.items():
        got = sources[split].class_images
        assert got.class_names == source.class_images.class_names
        np.testing.assert_array_equal(got.counts, source.class_images.counts)
        np.testing.assert_array_equal(got.images, source.class_images.images)
        episode = dict(ways=5, shots=1, queries=1, seed=3)
        got_batch = next(iter(sources[split].episodes(**episode)))
        expected_batch = next(iter(source.episodes(**episode)))
        for key in got_batch:
            np.testing.assert_array_equal(got_batch[key], expected_batch[key])


@pytest.mark.slow  # reads the benchmark three ways (30 s); the tiered-ImageNet one runs by default
def test_train_tar_gives_the_extracted_folders_arrays_and_episodes(ilsvrc, manual_dir):
    read = dict(image_size=8, images_per_class=2, cache=False)
    folder = tfmeta.data.mini_imagenet(ilsvrc, **read)
    assert folder["train"].class_images.num_examples == 64 * 2
    _assert_same(tfmeta.data.mini_imagenet(manual_dir, **read), folder)
    _assert_same(tfmeta.data.mini_imagenet(manual_dir / TRAIN_TAR, **read), folder)


def test_tiered_imagenet_from_the_train_tar(tmp_path):
    ilsvrc = write_mini_imagenet_folders(tmp_path / "ilsvrc", per_class=2, by_split=False,
                                         benchmark="tiered_imagenet")
    manual_dir = write_ilsvrc_train_tar(tmp_path / "manual", ilsvrc).parent
    folder = tfmeta.data.tiered_imagenet(ilsvrc, image_size=8, cache=False)
    _assert_same(tfmeta.data.tiered_imagenet(manual_dir, image_size=8, cache=False), folder)


def test_cache_follows_the_tars_size_and_time(manual_dir, tmp_path):
    tar = tmp_path / TRAIN_TAR
    shutil.copy(manual_dir / TRAIN_TAR, tar)
    cached = lambda: sorted((tmp_path / "cache" / "class_images").glob("*.npz"))  # noqa: E731
    read = dict(image_size=8, images_per_class=2, cache_dir=tmp_path / "cache")
    first = tfmeta.data.mini_imagenet(tar, **read)
    assert len(cached()) == 3
    _assert_same(tfmeta.data.mini_imagenet(tar, **read), first)
    assert len(cached()) == 3
    os.utime(tar, ns=(1, 1))
    tfmeta.data.mini_imagenet(tar, **read)
    assert len(cached()) == 6


def test_missing_train_tar_classes_and_images_are_named(ilsvrc, manual_dir, tmp_path):
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "ILSVRC2012_img_val.tar").write_bytes(b"")
    for read in (tfmeta.data.mini_imagenet, tfmeta.data.tiered_imagenet):
        with pytest.raises(FileNotFoundError, match=f"'ILSVRC2012_img_val.tar'.* not {TRAIN_TAR}"):
            read(tmp_path / "manual", image_size=8, cache=False)
    members = {f"{d.name}.tar": class_tar(d) for d in sorted(ilsvrc.iterdir())
               if d.name not in ("n07613480", "n01930112")}
    tar = write_tar(tmp_path / TRAIN_TAR, members)
    with pytest.raises(FileNotFoundError,
                       match=r"Missing: 2 classes, \['n01930112', 'n07613480'\]") as error:
        tfmeta.data.mini_imagenet(tar, image_size=8, cache=False)
    assert str(tar) in str(error.value)
    with pytest.raises(FileNotFoundError, match=r"images_per_class=4 .*'n01532829.tar'.*: 3"):
        tfmeta.data.mini_imagenet(manual_dir, image_size=8, images_per_class=4, cache=False)


def _with_class_tar(ilsvrc, tar, wnid, data):
    members = {f"{d.name}.tar": class_tar(d) for d in sorted(ilsvrc.iterdir())}
    members[f"{wnid}.tar"] = data
    return write_tar(tar, members)


def test_damaged_tars_and_images_are_named(ilsvrc, tmp_path):
    read = dict(image_size=8, images_per_class=2, cache=False)
    inner = bytearray(class_tar(ilsvrc / "n01930112"))
    second_header = tarfile.open(fileobj=io.BytesIO(inner)).getmembers()[1].offset
    inner[second_header:second_header + 512] = b"x" * 512  # tarfile would stop there silently
    tar = _with_class_tar(ilsvrc, tmp_path / "a" / TRAIN_TAR, "n01930112", bytes(inner))
    with pytest.raises(ValueError, match="class tar 'n01930112.tar' .* damaged"):
        tfmeta.data.mini_imagenet(tar, **read)
    broken_image = class_tar(ilsvrc / "n01930112")
    broken_image = broken_image.replace(b"\xff\xd8", b"\x00\x00", 1)  # the first JPEG's header
    tar = _with_class_tar(ilsvrc, tmp_path / "b" / TRAIN_TAR, "n01930112", broken_image)
    with pytest.raises(ValueError, match="'n01930112_12.JPEG' in the class tar n01930112.tar"):
        tfmeta.data.mini_imagenet(tar, image_size=8, images_per_class=3, cache=False)
    (tmp_path / "c.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(ValueError, match="cannot be read as a tar"):
        tfmeta.data.mini_imagenet(tmp_path / "c.tar", **read)


def test_links_and_paths_out_are_never_followed_or_written(ilsvrc, tmp_path):
    """Members are read into memory only: a link is skipped, nothing lands outside the cache."""
    data = io.BytesIO(class_tar(ilsvrc / "n01930112"))
    with tarfile.open(fileobj=data, mode="a") as inner:
        link = tarfile.TarInfo("n01930112_0.JPEG")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        inner.addfile(link)
    tar = _with_class_tar(ilsvrc, tmp_path / "manual" / TRAIN_TAR, "n01930112", data.getvalue())
    read = dict(image_size=8, images_per_class=2, cache=False)
    _assert_same(tfmeta.data.mini_imagenet(tar, **read), tfmeta.data.mini_imagenet(ilsvrc, **read))
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["manual", TRAIN_TAR])
