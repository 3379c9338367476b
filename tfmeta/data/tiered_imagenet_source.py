"""tieredImageNet (Ren et al. 2018) from ILSVRC-2012 training images the user holds.

The module is not named `tiered_imagenet` so that `tfmeta.data.tiered_imagenet`
is unambiguously the entry-point function.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfmeta.data.benchmark_files import (
    check_folder,
    episode_sources,
    pickles_in,
    refuse_pickle,
    shown,
)
from tfmeta.data.few_shot import FewShotEpisodes
from tfmeta.data.image_files import class_images_from_files
from tfmeta.data.imagenet_layouts import (
    has_split_folders,
    has_wnid_folders,
    ilsvrc_files,
    split_folder_files,
)
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.data.published_splits import published_split

_SPLIT = "Ren et al.'s tieredImageNet split"
_LAYOUTS = (
    "a copy laid out by split (train/, val/, test/ holding one folder per wnid), or an "
    "ILSVRC-2012 train folder holding one folder per wnid"
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

    Reads, without downloading anything, either a copy laid out by split
    (`train/`, `val/`, `test/`, each holding one folder per wnid) or an
    ILSVRC-2012 train folder (`<wnid>/<wnid>_<n>.JPEG`), whose images of the
    608 classes are the benchmark's (about 779,000). Held in memory at 84x84
    they take about 16.5 GB: `images_per_class` caps each class (the first
    images in file-name order), at the price of a smaller benchmark than the
    published one. Pickle files (the widely shared `*_images_png.pkl`) are
    never read: unpickling runs code.

    Args:
        data_dir: the folder, in one of the layouts above.
        image_size: side of the square images (84 is the standard).
        images_per_class: take at most this many images of each class; None
            (default) takes all.
        cache: keep decoded arrays under `cache_dir`.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Returns:
        `{"train", "validation", "test"}` to `FewShotEpisodes`.

    Raises:
        FileNotFoundError: naming the missing classes and the folder looked in.
        ValueError: for a pickle file or an image that cannot be decoded.

    Example:

    >>> sources = tfmeta.data.tiered_imagenet("path/to/ILSVRC2012/train", images_per_class=300)
    """
    root = Path(data_dir)
    refuse_pickle(root, "the ILSVRC-2012 train folder, or a copy laid out by split")
    check_folder(root, f"a tieredImageNet folder ({_LAYOUTS})")
    published = published_split("tiered_imagenet")
    if has_split_folders(root):
        files = split_folder_files(root, published, _SPLIT)
        if images_per_class is not None:
            files = {split: _capped(*parts, images_per_class) for split, parts in files.items()}
    elif has_wnid_folders(root):
        files = ilsvrc_files(root, published, _SPLIT, images_per_class)
    else:
        pickles = pickles_in(root)
        hint = (
            f" It holds pickle files {pickles}, which tfmeta never reads (unpickling runs code)."
            if pickles
            else ""
        )
        raise FileNotFoundError(
            f"Expected a tieredImageNet folder: {_LAYOUTS}. Received: {str(root)!r}, holding "
            f"{shown(sorted(p.name for p in root.iterdir()))}.{hint}"
        )
    preprocessing = ImagePreprocessing(image_size=image_size, channels=3)
    splits = {
        split: class_images_from_files(
            paths, names, preprocessing, root=root, label=f"tiered_imagenet-{split}",
            cache=cache, cache_dir=cache_dir,
        )
        for split, (paths, names) in files.items()
    }
    return episode_sources(splits, "tiered_imagenet")


def _capped(paths, names, images_per_class: int):
    """At most `images_per_class` of each class's files (they come grouped by class)."""
    kept, counts = [], {}
    for path, name in zip(paths, names):
        counts[name] = counts.get(name, 0) + 1
        if counts[name] <= images_per_class:
            kept.append((path, name))
    return [p for p, _ in kept], [n for _, n in kept]
