"""tieredImageNet (Ren et al. 2018) from ILSVRC-2012 training images the user holds.

The module is not named `tiered_imagenet` so that `tfmeta.data.tiered_imagenet`
is unambiguously the entry-point function.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfmeta.data.benchmark_files import refuse_pickle
from tfmeta.data.few_shot import FewShotEpisodes
from tfmeta.data.imagenet_benchmarks import imagenet_benchmark, unrecognised_layout
from tfmeta.data.imagenet_layouts import (
    has_split_folders,
    has_wnid_folders,
    ilsvrc_files,
    split_folder_files,
)

_SPLIT = "Ren et al.'s tieredImageNet split"
_LAYOUTS = (
    "a copy laid out by split (train/, val/, test/ holding one folder per wnid), an "
    "ILSVRC-2012 train folder holding one folder per wnid, or ILSVRC2012_img_train.tar or "
    "the folder holding it (TFDS's imagenet2012 manual directory)"
)


def tiered_imagenet(
    data_dir: str | os.PathLike,
    image_size: int = 84,
    *,
    images_per_class: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, FewShotEpisodes]:
    """tieredImageNet episode sources: 351 / 97 / 160 classes of 20 / 6 / 8 super-categories.

    Reads, without downloading anything, a copy laid out by split (`train/`,
    `val/`, `test/`, each holding one folder per wnid), an ILSVRC-2012 train
    folder (`<wnid>/<wnid>_<n>.JPEG`), or ILSVRC-2012's train tar unextracted
    (`ILSVRC2012_img_train.tar` itself or the folder holding it, TFDS's
    `imagenet2012` manual directory; only the 608 classes' tars inside it are
    opened, see `tfmeta.data.ilsvrc_tar`). The ILSVRC images of the 608
    classes are the benchmark's (about 779,000); folder and tar give the same
    arrays and episodes. Held in memory at 84x84
    they take about 16.5 GB: `images_per_class` caps each class (the first
    images in file-name order), at the price of a smaller benchmark than the
    published one. Pickle files (the widely shared `*_images_png.pkl`) are
    never read: unpickling runs code.

    Args:
        data_dir: the folder (or train tar), in one of the layouts above.
        image_size: side of the square images (84 is the standard).
        images_per_class: take at most this many images of each class; None
            (default) takes all.
        cache: keep decoded arrays under `cache_dir`.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Returns:
        `{"train", "validation", "test"}` to `FewShotEpisodes`.

    Raises:
        FileNotFoundError: naming the missing classes and the folder or tar
            looked in (or the train tar missing from a manual directory).
        ValueError: for a pickle file, a damaged tar or an image that cannot
            be decoded.

    Example:

    >>> sources = tfmeta.data.tiered_imagenet("path/to/ILSVRC2012/train", images_per_class=300)
    """
    root = Path(data_dir)
    refuse_pickle(root, "the ILSVRC-2012 train folder or train tar, or a copy laid out by split")
    return imagenet_benchmark(
        root, "tiered_imagenet", "tieredImageNet", _LAYOUTS, _SPLIT, _split_files,
        image_size=image_size, images_per_class=images_per_class, cache=cache,
        cache_dir=cache_dir,
    )


def _split_files(root: Path, published, images_per_class: int | None):
    """`{split: (paths, class names)}` for whichever folder layout `root` holds."""
    if has_split_folders(root):
        files = split_folder_files(root, published, _SPLIT)
        if images_per_class is None:
            return files
        return {split: _capped(*parts, images_per_class) for split, parts in files.items()}
    if has_wnid_folders(root):
        return ilsvrc_files(root, published, _SPLIT, images_per_class)
    raise unrecognised_layout(root, "tieredImageNet", _LAYOUTS)


def _capped(paths, names, images_per_class: int):
    """At most `images_per_class` of each class's files (they come grouped by class)."""
    kept, counts = [], {}
    for path, name in zip(paths, names):
        counts[name] = counts.get(name, 0) + 1
        if counts[name] <= images_per_class:
            kept.append((path, name))
    return [p for p, _ in kept], [n for _, n in kept]
