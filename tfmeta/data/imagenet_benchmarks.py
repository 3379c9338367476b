"""Reading an ImageNet-derived benchmark (mini-ImageNet, tieredImageNet) from the layout at hand.

Both benchmarks come from ILSVRC-2012 training images, held as ILSVRC's train
tar (or TFDS's `imagenet2012` manual directory holding it) or as image
folders in one of the benchmark's layouts. The tar is read the same way for
both (`tfmeta.data.ilsvrc_tar`); each benchmark lists the files of its own
folder layouts and this module decodes them into episode sources.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from tfmeta.data.benchmark_files import check_folder, episode_sources, pickles_in, shown
from tfmeta.data.few_shot import FewShotEpisodes
from tfmeta.data.ilsvrc_tar import (
    ilsvrc_tar_class_images,
    ilsvrc_train_tar,
    missing_train_tar_hint,
)
from tfmeta.data.image_files import class_images_from_files
from tfmeta.data.imagenet_layouts import SplitFiles
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.data.published_splits import published_split

# (root, published split, images per class) -> the files of each split.
SplitFilesFn = Callable[[Path, dict, "int | None"], SplitFiles]


def imagenet_benchmark(
    root: Path,
    benchmark: str,
    title: str,
    layouts: str,
    split_description: str,
    split_files: SplitFilesFn,
    *,
    image_size: int,
    images_per_class: int | None,
    cache: bool,
    cache_dir: str | os.PathLike | None,
) -> dict[str, FewShotEpisodes]:
    """`{"train", "validation", "test"}` episode sources of `benchmark` read from `root`.

    Args:
        root: the user's folder or train tar.
        benchmark: the published split's name (`tfmeta.data.published_split`),
            also the cache label.
        title: the benchmark as errors name it ("mini-ImageNet").
        layouts: the layouts `root` may have, as errors list them.
        split_description: whose split it is, as errors name it.
        split_files: lists each split's files in the folder layouts.
        image_size, images_per_class, cache, cache_dir: as the public sources take them.
    """
    published = published_split(benchmark)
    preprocessing = ImagePreprocessing(image_size=image_size, channels=3)
    train_tar = ilsvrc_train_tar(root)
    if train_tar is not None:
        splits = ilsvrc_tar_class_images(
            train_tar, published, split_description, images_per_class, preprocessing,
            benchmark=benchmark, cache=cache, cache_dir=cache_dir,
        )
        return episode_sources(splits, benchmark)
    check_folder(root, f"a {title} folder ({layouts})")
    splits = {
        split: class_images_from_files(
            paths, names, preprocessing, root=root, label=f"{benchmark}-{split}",
            cache=cache, cache_dir=cache_dir,
        )
        for split, (paths, names) in split_files(root, published, images_per_class).items()
    }
    return episode_sources(splits, benchmark)


def unrecognised_layout(root: Path, title: str, layouts: str) -> FileNotFoundError:
    """The error for a folder in none of the layouts: what it holds, and why pickles are ignored."""
    pickles = pickles_in(root)
    hint = (
        f" It holds pickle files {pickles}, which tfmeta never reads (unpickling runs code)."
        if pickles
        else ""
    )
    return FileNotFoundError(
        f"Expected a {title} folder: {layouts}. Received: {str(root)!r}, holding "
        f"{shown(sorted(p.name for p in root.iterdir()))}.{hint}{missing_train_tar_hint(root)}"
    )
