"""Decoding listed image files into cached ClassImages: reused, and rebuilt when a file changes."""

import os

import numpy as np

import tfmeta.data
from tfmeta.data.image_files import class_images_from_files
from benchmark_layouts import write_jpeg

PREP = tfmeta.data.ImagePreprocessing(image_size=8, channels=3)


def test_cache_is_reused_and_a_changed_file_is_decoded_again(tmp_path):
    paths = [tmp_path / "a" / f"{i}.jpg" for i in range(3)]
    for i, path in enumerate(paths):
        write_jpeg(path, 40 * i)
    first = class_images_from_files(paths, ["a"] * 3, PREP, root=tmp_path, label="t",
                                    cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache" / "class_images").glob("t-*.npz"))
    assert len(cached) == 1
    again = class_images_from_files(paths, ["a"] * 3, PREP, root=tmp_path, label="t",
                                    cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.images, first.images)
    write_jpeg(paths[1], 250)  # new bytes: another size or time
    os.utime(paths[1], ns=(1, 1))
    changed = class_images_from_files(paths, ["a"] * 3, PREP, root=tmp_path, label="t",
                                      cache_dir=tmp_path / "cache")
    assert abs(int(changed.images[1, 4, 4, 0]) - 250) <= 2
    assert len(list((tmp_path / "cache" / "class_images").glob("t-*.npz"))) == 2
