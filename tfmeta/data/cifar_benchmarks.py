"""CIFAR-FS (Bertinetto et al. 2019) and FC100 (Oreshkin et al. 2018) from CIFAR-100 the user holds.

Two sources are read, neither downloaded unless asked: the binary version of
CIFAR-100 (`cifar-100-binary.tar.gz`, or the folder it extracts to), and
TFDS's prepared `cifar100` folder. The Python version (`cifar-100-python`)
is pickled and never read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tfmeta.data.archive import extract_archive
from tfmeta.data.benchmark_files import (
    check_folder,
    episode_sources,
    pickles_in,
    refuse_pickle,
    shown,
)
from tfmeta.data.cache import class_images_cache_path, load_or_build
from tfmeta.data.class_images import ClassImages
from tfmeta.data.class_split import split_classes
from tfmeta.data.few_shot import FewShotEpisodes
from tfmeta.data.image_files import files_fingerprint
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.data.published_splits import published_split

BINARY_FILES = ("train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt")
RECORD_BYTES = 2 + 32 * 32 * 3  # coarse label, fine label, R, G and B planes of 32x32
_ALTERNATIVES = (
    "the CIFAR-100 binary version (cifar-100-binary.tar.gz or its extracted folder), or "
    "data_dir=None to read TFDS's prepared cifar100"
)


class Cifar100(NamedTuple):
    """Every CIFAR-100 image (train and test pooled) with its fine class and superclass."""

    images: ClassImages  # classes: the fine class names
    superclass_of: dict[str, str]  # fine class name -> superclass name


def cifar100(
    data_dir: str | os.PathLike | None = None,
    image_size: int = 32,
    *,
    tfds_data_dir: str | os.PathLike | None = None,
    download: bool = False,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Cifar100:
    """All 60,000 CIFAR-100 images by fine class, and each fine class's superclass.

    Args:
        data_dir: the binary version: `cifar-100-binary.tar.gz`, the folder it
            extracts to (holding `BINARY_FILES`), or a folder holding that one.
            `None` reads TFDS's `cifar100` builder from `tfds_data_dir`.
        image_size: side of the stored square images (32: as they come).
        tfds_data_dir: TFDS's data folder (default: TFDS's own).
        download: with `data_dir=None`, let TFDS download and prepare
            `cifar100` if it is not prepared; otherwise a missing preparation
            raises.
        cache: keep the decoded arrays under `cache_dir`.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Raises:
        FileNotFoundError: naming the missing files and where they were looked for.
        ValueError: for pickle files or files of the wrong size.
    """
    preprocessing = None if image_size == 32 else ImagePreprocessing(image_size, channels=3)
    if data_dir is None:
        return _from_tfds(tfds_data_dir, download, preprocessing, cache, cache_dir)
    folder = _binary_folder(Path(data_dir), cache_dir)

    def build() -> ClassImages:
        return _binary_class_images(folder, preprocessing)

    path = None
    if cache:
        paths = [folder / name for name in BINARY_FILES]
        key = files_fingerprint(paths, folder)
        path = class_images_cache_path(cache_dir, "cifar100", "binary", key, preprocessing)
    images = load_or_build(path, build)
    return Cifar100(images, _binary_superclasses(folder))


def cifar_fs(
    data_dir: str | os.PathLike | None = None, image_size: int = 32, **kwargs
) -> dict[str, FewShotEpisodes]:
    """CIFAR-FS episode sources: Bertinetto et al.'s 64 / 16 / 20 split of CIFAR-100's classes.

    600 images per class (train and test pooled), 32x32 RGB. The split ships
    with tfmeta (`tfmeta.data.published_split("cifar_fs")`).

    Args:
        data_dir, image_size, **kwargs: see `tfmeta.data.cifar100`
            (`tfds_data_dir`, `download`, `cache`, `cache_dir`).

    Returns:
        `{"train", "validation", "test"}` to `FewShotEpisodes`.

    Example:

    >>> sources = tfmeta.data.cifar_fs("path/to/cifar-100-binary.tar.gz")
    >>> sources["test"].num_classes
    20
    """
    data = cifar100(data_dir, image_size, **kwargs)
    split = published_split("cifar_fs")
    _check_classes(data.images.base_class_names, split, "CIFAR-FS")
    return episode_sources(split_classes(data.images, split), "cifar_fs")


def fc100(
    data_dir: str | os.PathLike | None = None, image_size: int = 32, **kwargs
) -> dict[str, FewShotEpisodes]:
    """FC100 episode sources: Oreshkin et al.'s superclass split of CIFAR-100, 12 / 4 / 4.

    The splits hold the fine classes of their superclasses (60 / 20 / 20
    classes), so no superclass spans two splits. The superclass split ships
    with tfmeta (`tfmeta.data.published_split("fc100")`).

    Args:
        data_dir, image_size, **kwargs: see `tfmeta.data.cifar100`.

    Returns:
        `{"train", "validation", "test"}` to `FewShotEpisodes`.
    """
    data = cifar100(data_dir, image_size, **kwargs)
    superclasses = published_split("fc100")
    known = sorted(set(data.superclass_of.values()))
    _check_classes(known, superclasses, "FC100 superclass")
    split = {
        name: [c for c in data.images.base_class_names if data.superclass_of[c] in members]
        for name, members in superclasses.items()
    }
    return episode_sources(split_classes(data.images, split), "fc100")


def _check_classes(known, split, what: str) -> None:
    wanted = [name for members in split.values() for name in members]
    absent = sorted(set(wanted) - set(known))
    if absent:
        raise ValueError(
            f"Expected CIFAR-100's class names, as the {what} split lists them. Missing: "
            f"{len(absent)} names, {shown(absent)}; received {len(known)} names, {shown(known)}"
        )


def _binary_folder(path: Path, cache_dir) -> Path:
    refuse_pickle(path, _ALTERNATIVES)
    if path.is_file():
        path = extract_archive(path, cache_dir)
    check_folder(path, f"CIFAR-100 data: {_ALTERNATIVES}")
    for candidate in [path] + sorted(p for p in path.iterdir() if p.is_dir()):
        if (candidate / "train.bin").is_file() or (candidate / "test.bin").is_file():
            missing = [name for name in BINARY_FILES if not (candidate / name).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"Expected the CIFAR-100 binary files {list(BINARY_FILES)} in "
                    f"{str(candidate)!r}. Missing: {missing}"
                )
            return candidate
    pickled = pickles_in(path) + [
        f"{p.name}/" for p in path.iterdir() if p.name == "cifar-100-python"
    ]
    hint = (
        f" It holds the pickled Python version ({pickled}), which tfmeta never reads "
        "(unpickling runs code)."
        if pickled
        else ""
    )
    raise FileNotFoundError(
        f"Expected the CIFAR-100 binary files {list(BINARY_FILES)} in {str(path)!r} or a folder "
        f"in it. Received: {shown(sorted(p.name for p in path.iterdir()))}.{hint} Pass "
        f"{_ALTERNATIVES}"
    )


def _names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _records(folder: Path) -> np.ndarray:
    parts = []
    for name in ("train.bin", "test.bin"):
        data = np.fromfile(folder / name, dtype=np.uint8)
        if data.size == 0 or data.size % RECORD_BYTES:
            raise ValueError(
                f"Expected CIFAR-100 binary records of {RECORD_BYTES} bytes. Received: "
                f"{str(folder / name)!r} of {data.size} bytes, not a whole number of them"
            )
        parts.append(data.reshape(-1, RECORD_BYTES))
    return np.concatenate(parts)


def _binary_class_images(folder: Path, preprocessing) -> ClassImages:
    records = _records(folder)
    fine_names = _names(folder / "fine_label_names.txt")
    if records[:, 1].max() >= len(fine_names):
        raise ValueError(
            f"Expected fine labels below the {len(fine_names)} names of "
            f"{str(folder / 'fine_label_names.txt')!r}. Received: label {records[:, 1].max()}"
        )
    images = records[:, 2:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(fine_names)[records[:, 1]]
    return ClassImages.from_arrays(images, labels, preprocessing=preprocessing)


def _binary_superclasses(folder: Path) -> dict[str, str]:
    records = _records(folder)
    fine_names = _names(folder / "fine_label_names.txt")
    coarse_names = _names(folder / "coarse_label_names.txt")
    return _superclass_map(records[:, 1], records[:, 0], fine_names, coarse_names)


def _superclass_map(fine, coarse, fine_names, coarse_names) -> dict[str, str]:
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    fine_ids, counts = np.unique(pairs[:, 0], return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            "Expected each CIFAR-100 class in one superclass. Received: class "
            f"{fine_names[fine_ids[counts > 1][0]]!r} in several"
        )
    return {fine_names[f]: coarse_names[c] for f, c in pairs}


def _from_tfds(tfds_data_dir, download, preprocessing, cache, cache_dir) -> Cifar100:
    import tensorflow_datasets as tfds

    builder = tfds.builder(
        "cifar100", data_dir=None if tfds_data_dir is None else os.fspath(tfds_data_dir)
    )
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(
                f"Expected TFDS's cifar100 prepared in {str(builder.data_dir)!r}. Received: no "
                "prepared copy there. Pass tfds_data_dir= where it is prepared, download=True "
                "to let TFDS download it, or data_dir= the CIFAR-100 binary version"
            )
        builder.download_and_prepare()
    features = builder.info.features
    fine_names, coarse_names = features["label"].names, features["coarse_label"].names
    arrays = [
        (batch["image"], batch["label"], batch["coarse_label"])
        for batch in tfds.as_numpy(builder.as_dataset(split="train+test", batch_size=10_000))
    ]
    images, fine, coarse = (np.concatenate(part) for part in zip(*arrays))

    def build() -> ClassImages:
        labels = np.asarray(fine_names)[fine]
        return ClassImages.from_arrays(images, labels, preprocessing=preprocessing)

    path = None
    if cache:
        path = class_images_cache_path(
            cache_dir, "cifar100", "tfds", builder.info.full_name, str(builder.data_dir),
            len(images), preprocessing,
        )
    superclasses = _superclass_map(fine, coarse, fine_names, coarse_names)
    return Cifar100(load_or_build(path, build), superclasses)
