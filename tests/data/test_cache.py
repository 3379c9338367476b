import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

import tfmeta.data
from tfmeta.data.cache import class_images_cache_path, directory_fingerprint, load_or_build
from tfmeta.data.temporary_files import remove_stale_temporaries, temporary_path


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TFMETA_CACHE_DIR", str(tmp_path / "c"))
    assert tfmeta.data.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TFMETA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tfmeta.data.default_cache_dir() == tmp_path / "xdg" / "tfmeta"


def test_load_or_build_builds_once_then_loads(tmp_path, toy_class_images):
    calls = []

    def build():
        calls.append(1)
        return toy_class_images(num_classes=2, per_class=3)

    path = class_images_cache_path(tmp_path, "toy split", "key", 1)
    assert path.parent == tmp_path / "class_images" and path.name.startswith("toy_split-")
    first = load_or_build(path, build)
    second = load_or_build(path, build)
    assert len(calls) == 1 and second.class_names == first.class_names
    assert class_images_cache_path(tmp_path, "toy", "key", 2) != class_images_cache_path(
        tmp_path, "toy", "key", 1
    )
    path.write_bytes(b"corrupt")
    load_or_build(path, build)
    assert len(calls) == 2


def test_directory_fingerprint_depends_on_contents_not_location(tmp_path):
    for root in ("a", "b"):
        (tmp_path / root / "x").mkdir(parents=True)
        (tmp_path / root / "x" / "1.png").write_bytes(b"12")
    assert directory_fingerprint(tmp_path / "a") == directory_fingerprint(tmp_path / "b")
    (tmp_path / "b" / "x" / "2.png").write_bytes(b"3")
    assert directory_fingerprint(tmp_path / "a") != directory_fingerprint(tmp_path / "b")


def test_directory_fingerprint_changes_when_a_file_is_replaced_by_one_of_the_same_size(tmp_path):
    image = tmp_path / "x" / "1.png"
    image.parent.mkdir()
    image.write_bytes(b"12")
    stat = image.stat()
    before = directory_fingerprint(tmp_path)
    image.write_bytes(b"21")
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even the same modification time
    assert directory_fingerprint(tmp_path) != before


def _write_images(split, value):
    for label in range(2):
        folder = split / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(2):
            image = np.full((4, 4, 1), value + label, np.uint8)
            tf.io.write_file(str(folder / f"{index}.png"), tf.io.encode_png(image))


def test_image_folder_cache_decodes_replaced_images_afresh(tmp_path):
    root = tmp_path / "images"
    _write_images(root / "train", 10)
    first = tfmeta.data.image_folder_class_images(root, "train", cache_dir=tmp_path / "cache")
    _write_images(root / "train", 200)  # same names, same sizes, other pixels
    second = tfmeta.data.image_folder_class_images(root, "train", cache_dir=tmp_path / "cache")
    assert first.images.max() == 11 and second.images.min() == 200


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(child.stdout)


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    final = tmp_path / "omniglot-train-0123.npz"
    mine = temporary_path(final)
    dead = mine.with_name(mine.name.replace(f"_{os.getpid()}.", f"_{_dead_pid()}."))
    old_format = tmp_path / f".{final.name}.{_dead_pid()}.{'a' * 32}.tmp"  # before hosts were named
    other_host = tmp_path / f".{final.name}.otherhost_{_dead_pid()}.{'b' * 32}.tmp"
    for path in (mine, dead, old_format, other_host):
        path.write_bytes(b"partial")
    (tmp_path / "unrelated.tmp").write_bytes(b"user file")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead, old_format])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine.name, other_host.name, "unrelated.tmp"]
    )


def test_temporaries_with_a_suffix_are_recognised(tmp_path):
    keras_file = temporary_path(tmp_path / "learner.keras", suffix=".keras")
    assert keras_file.name.endswith(".tmp.keras")
    stale = keras_file.with_name(keras_file.name.replace(f"_{os.getpid()}.", f"_{_dead_pid()}."))
    stale.write_bytes(b"partial zip")
    assert remove_stale_temporaries(tmp_path) == [stale]
