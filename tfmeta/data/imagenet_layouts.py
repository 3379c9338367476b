"""Finding the images of ImageNet-derived benchmarks: folders by split, or an ILSVRC train folder.

Both mini-ImageNet and tieredImageNet are subsets of ILSVRC-2012's training
images, shared either as a copy laid out by split (`train/`, `val/`, `test/`,
each with one folder per wnid) or read from an ILSVRC train folder itself
(`<wnid>/<wnid>_<n>.JPEG`). Given a published split (wnids per split), these
helpers list the files of each split, or say exactly which classes or images
are missing and where they were looked for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence, TypeVar

from tfmeta.data.benchmark_files import images_in, shown
from tfmeta.data.published_splits import SPLIT_NAMES

# Class folders of a copy laid out by split, by split.
SPLIT_FOLDERS = {"train": "train", "validation": "val", "test": "test"}
WNID = re.compile(r"n\d{8}")

T = TypeVar("T")

SplitFiles = dict[str, tuple[list[Path], list[str]]]  # split -> (paths, class names)


def has_split_folders(root: Path) -> bool:
    """Whether `root` holds `train/`, `val/` or `test/`."""
    return any((root / folder).is_dir() for folder in SPLIT_FOLDERS.values())


def has_wnid_folders(root: Path) -> bool:
    """Whether `root` holds folders named like wnids (`n01532829`), as ILSVRC's train folder."""
    return any(WNID.fullmatch(p.name) for p in root.iterdir() if p.is_dir())


def split_folder_files(root: Path, published: Mapping[str, Sequence[str]], what: str) -> SplitFiles:
    """Every image of every published class, from `root/<train|val|test>/<wnid>/`.

    Args:
        root: the folder holding the split folders.
        published: wnids per split.
        what: the split's name for messages (e.g. "Ravi & Larochelle's split").
    """
    files = {}
    for split, folder in SPLIT_FOLDERS.items():
        split_dir = root / folder
        absent = [wnid for wnid in published[split] if not (split_dir / wnid).is_dir()]
        if absent:
            raise FileNotFoundError(
                f"Expected one folder per {split} class of {what} in {str(split_dir)!r}. "
                f"Missing: {len(absent)} classes, {shown(absent)}"
            )
        files[split] = _class_files(split_dir, published[split], None)
    return files


def ilsvrc_files(
    root: Path,
    published: Mapping[str, Sequence[str]],
    what: str,
    images_per_class: int | None,
) -> SplitFiles:
    """The images of the published classes from an ILSVRC train folder (`root/<wnid>/`).

    Args:
        root: the ILSVRC train folder.
        published: wnids per split.
        what: the split's name for messages.
        images_per_class: the first this many images of each class in file
            name order; None takes them all.
    """
    wanted = [wnid for split in SPLIT_NAMES for wnid in published[split]]
    absent = [wnid for wnid in wanted if not (root / wnid).is_dir()]
    if absent:
        raise FileNotFoundError(
            f"Expected a folder for each of the {len(wanted)} classes of {what} in the ILSVRC "
            f"train folder {str(root)!r}. Missing: {len(absent)} classes, {shown(absent)}"
        )
    return {
        split: _class_files(root, published[split], images_per_class) for split in SPLIT_NAMES
    }


def first_images(images: Sequence[T], images_per_class: int | None, where: str) -> list[T]:
    """The first `images_per_class` of one class's `images` (all of them when None).

    A class with fewer is refused, naming `where` it was read from, so that a
    benchmark never silently holds fewer images of a class than asked for.
    """
    if images_per_class is None:
        return list(images)
    if len(images) < images_per_class:
        raise FileNotFoundError(
            f"Expected at least images_per_class={images_per_class} images in {where}. "
            f"Received: {len(images)}"
        )
    return list(images[:images_per_class])


def _class_files(folder: Path, wnids: Sequence[str], images_per_class: int | None):
    paths, names = [], []
    for wnid in wnids:
        class_paths = first_images(
            images_in(folder / wnid), images_per_class, repr(str(folder / wnid))
        )
        paths += class_paths
        names += [wnid] * len(class_paths)
    return paths, names
