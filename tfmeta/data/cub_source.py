"""CUB-200-2011 (Wah et al. 2011) with the 100 / 50 / 50 class split of Chen et al. (2019).

Read from the extracted `CUB_200_2011` folder, or from TFDS's prepared
`caltech_birds2011`; nothing is downloaded unless the caller allows it.
The module is not named `cub` so that `tfmeta.data.cub` is unambiguously the
entry-point function.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tfmeta.data.benchmark_files import (
    check_folder,
    episode_sources,
    images_in,
    refuse_pickle,
    shown,
)
from tfmeta.data.class_images import ClassImages
from tfmeta.data.class_split import split_classes
from tfmeta.data.few_shot import FewShotEpisodes
from tfmeta.data.image_files import class_images_from_files
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.data.tfds_images import tfds_class_images

NUM_CLASSES = 200
TFDS_NAME = "caltech_birds2011"
_CLASS_FOLDER = re.compile(r"(\d{3})\.\S+")  # "001.Black_footed_Albatross"


def cub_split(class_folders: list[str]) -> dict[str, list[str]]:
    """Chen et al.'s split of the 200 class folders, sorted by name: index `i` from 0
    goes to train if `i % 2 == 0` (100), validation if `i % 4 == 1` (50), test if
    `i % 4 == 3` (50), as their `write_CUB_filelist.py` deals them out."""
    ordered = sorted(class_folders)
    return {
        "train": [name for i, name in enumerate(ordered) if i % 2 == 0],
        "validation": [name for i, name in enumerate(ordered) if i % 4 == 1],
        "test": [name for i, name in enumerate(ordered) if i % 4 == 3],
    }


def cub(
    data_dir: str | os.PathLike | None = None,
    image_size: int = 84,
    *,
    tfds_data_dir: str | os.PathLike | None = None,
    download: bool = False,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, FewShotEpisodes]:
    """CUB-200-2011 episode sources: 100 / 50 / 50 bird species, about 59 images each.

    Reads the extracted `CUB_200_2011.tgz` without downloading anything:
    `data_dir` is the `CUB_200_2011` folder, its `images/` folder (200 class
    folders `001.Black_footed_Albatross` ... `200.Common_Yellowthroat`), or a
    folder holding `CUB_200_2011/`. With `data_dir=None`, reads TFDS's
    prepared `caltech_birds2011` instead (its train and test images pooled,
    11,788 in all). The split is Chen et al.'s rule over the sorted class
    folders (`cub_split`), the split most few-shot papers use; both readers
    give the same classes. Whole images are resized to `image_size` (no
    bounding-box crop).

    Args:
        data_dir: see above; `None` reads TFDS.
        image_size: side of the square images (84, as for mini-ImageNet).
        tfds_data_dir: TFDS's data folder (default: TFDS's own).
        download: with `data_dir=None`, let TFDS download and prepare
            `caltech_birds2011` if it is not prepared (about 1.2 GB from
            data.caltech.edu); otherwise a missing preparation raises.
        cache: keep decoded arrays under `cache_dir`.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Returns:
        `{"train", "validation", "test"}` to `FewShotEpisodes` (100, 50, 50
        classes). Classes are named by their folder (`001.Black_footed_Albatross`)
        from the folder, by their number (`001`) from TFDS, whose `label`
        feature has no names.

    Raises:
        FileNotFoundError: naming the missing class folders or TFDS labels (by
            number) or empty folders, and where they were looked for; or TFDS's
            `caltech_birds2011` not prepared in `tfds_data_dir` (without
            `download=True`).
        ValueError: for a pickle file or an image that cannot be decoded.

    Example:

    >>> sources = tfmeta.data.cub("path/to/CUB_200_2011")
    >>> sources["validation"].num_classes
    50
    >>> sources = tfmeta.data.cub(tfds_data_dir="path/to/tensorflow_datasets")
    """
    if data_dir is None:
        return _from_tfds(image_size, tfds_data_dir, download, cache, cache_dir)
    root = Path(data_dir)
    refuse_pickle(root, "the extracted CUB_200_2011 folder")
    images_dir = _images_folder(check_folder(root, "the extracted CUB_200_2011 folder"))
    folders = {
        int(match[1]): p.name
        for p in images_dir.iterdir()
        if p.is_dir() and (match := _CLASS_FOLDER.fullmatch(p.name))
    }
    absent = [f"{n:03d}" for n in range(1, NUM_CLASSES + 1) if n not in folders]
    if absent:
        raise FileNotFoundError(
            f"Expected the {NUM_CLASSES} CUB class folders 001.<name> ... 200.<name> in "
            f"{str(images_dir)!r}. Missing: {len(absent)} classes numbered {shown(absent)}"
        )
    preprocessing = ImagePreprocessing(image_size=image_size, channels=3)
    splits = {}
    for split, class_folders in cub_split(list(folders.values())).items():
        paths, names = [], []
        for folder in class_folders:
            class_paths = images_in(images_dir / folder)
            paths += class_paths
            names += [folder] * len(class_paths)
        splits[split] = class_images_from_files(
            paths, names, preprocessing, root=images_dir, label=f"cub-{split}",
            cache=cache, cache_dir=cache_dir,
        )
    return episode_sources(splits, "cub")


def _images_folder(root: Path) -> Path:
    """The folder holding the class folders: `root`, `root/images` or `root/CUB_200_2011/images`."""
    for candidate in (root, root / "images", root / "CUB_200_2011" / "images"):
        if candidate.is_dir() and any(
            _CLASS_FOLDER.fullmatch(p.name) for p in candidate.iterdir() if p.is_dir()
        ):
            return candidate
    raise FileNotFoundError(
        "Expected CUB class folders (001.Black_footed_Albatross, ...) in "
        f"{str(root)!r}, {str(root / 'images')!r} or {str(root / 'CUB_200_2011' / 'images')!r}. "
        f"Received: {str(root)!r} holding {shown(sorted(p.name for p in root.iterdir()))}"
    )


def _from_tfds(image_size: int, tfds_data_dir, download: bool, cache: bool,
               cache_dir) -> dict[str, FewShotEpisodes]:
    """The 200 classes of TFDS's `caltech_birds2011` (train + test), named `001` ... `200`.

    TFDS's `label` is the class folder's number minus one (its builder parses
    `images/<NNN>.<name>/...`), so the number names, sorted, deal out the same
    split as the folder names.
    """
    where = _tfds_folder(tfds_data_dir, download)
    images = tfds_class_images(
        TFDS_NAME, "train+test", preprocessing=ImagePreprocessing(image_size, channels=3),
        data_dir=tfds_data_dir, download=download, cache=cache, cache_dir=cache_dir,
    )
    present = {int(name) for name in images.base_class_names}
    absent = [f"{n:03d}" for n in range(1, NUM_CLASSES + 1) if n - 1 not in present]
    if absent:
        raise FileNotFoundError(
            f"Expected the {NUM_CLASSES} CUB classes (labels 0-199) in TFDS's {TFDS_NAME} "
            f"prepared in {where!r}. Missing: {len(absent)} classes numbered {shown(absent)}"
        )
    numbered = ClassImages(
        images.images, images.counts,
        [f"{int(name) + 1:03d}" for name in images.base_class_names],
    )
    return episode_sources(split_classes(numbered, cub_split(numbered.base_class_names)), "cub")


def _tfds_folder(tfds_data_dir, download: bool) -> str:
    """Where TFDS keeps `caltech_birds2011`; a FileNotFoundError if it is not prepared there
    and may not be downloaded."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(
        TFDS_NAME, data_dir=None if tfds_data_dir is None else os.fspath(tfds_data_dir)
    )
    if not download and not builder.is_prepared():
        raise FileNotFoundError(
            f"Expected TFDS's {TFDS_NAME} prepared in {str(builder.data_dir)!r}. Received: no "
            "prepared copy there. Pass tfds_data_dir= where it is prepared, download=True to let "
            "TFDS download it, or data_dir= the extracted CUB_200_2011 folder"
        )
    return str(builder.data_dir)
