"""Omniglot few-shot splits: the standard (Vinyals) protocol and Lake's original one.

The module is not named `omniglot` so that `tfmeta.data.omniglot` is unambiguously the
entry-point function.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tfmeta.data.archive import extract_archive
from tfmeta.data.class_images import ClassImages
from tfmeta.data.class_split import split_classes
from tfmeta.data.few_shot import FewShotEpisodes
from tfmeta.data.preprocessing import ImagePreprocessing
from tfmeta.data.tfds_images import image_folder_class_images, tfds_class_images

OMNIGLOT_PROTOCOLS = ("vinyals", "lake")
OMNIGLOT_NUM_CHARACTERS = 1623
VINYALS_SPLIT_SIZES = {"train": 1100, "validation": 100, "test": 423}


def omniglot_preprocessing(image_size: int = 28) -> ImagePreprocessing:
    """Omniglot's convention: grayscale, Lanczos-resized, inverted (strokes 1, paper 0)."""
    return ImagePreprocessing(
        image_size=image_size, channels=1, invert=True, resize_method="lanczos3"
    )


def omniglot_class_images(
    data_dir: str | os.PathLike | None = None,
    image_size: int = 28,
    *,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    tfds_data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> dict[str, ClassImages]:
    """The two official Omniglot sets, decoded: `{"train": background, "test": evaluation}`.

    Class names follow the ImageFolder layout, `"<Alphabet>__character<NN>"`
    (NN from 01), whichever source is read, so that both sources give the
    same class splits.

    Args:
        data_dir: an Omniglot `tfds.ImageFolder` folder (holding `train/` and
            `test/`), a folder holding exactly one such folder, or a `.tar.gz`
            of one (extracted once into `cache_dir`, see `extract_archive`),
            e.g. `../shared/data/omniglot/omniglot.tar.gz` from the repo root.
            `None` reads TFDS's official `omniglot` builder (downloads from
            the internet on first use).
        image_size: side of the square images kept (28 is the standard).
        cache: keep the decoded arrays as `.npz` files under `cache_dir`
            (`<cache_dir>/class_images/omniglot-<split>-<hash>.npz`, about
            15 MB for 28x28); a cold decode of the 32,460 PNGs takes seconds,
            a warm load a fraction of a second.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).
        tfds_data_dir: TFDS's data folder, when `data_dir` is `None`.
        download: with `data_dir=None`, let TFDS download and prepare.

    Returns:
        `{"train": ClassImages, "test": ClassImages}` without rotations
        (964 and 659 characters of 20 drawings for the real data).
    """
    preprocessing = omniglot_preprocessing(image_size)
    if data_dir is None:
        sets = {
            split: tfds_class_images(
                "omniglot",
                split,
                preprocessing=preprocessing,
                data_dir=tfds_data_dir,
                download=download,
                cache=cache,
                cache_dir=cache_dir,
            )
            for split in ("train", "test")
        }
        return {split: _with_folder_names(images) for split, images in sets.items()}
    root = _image_folder_root(Path(data_dir), cache_dir)
    return {
        split: image_folder_class_images(
            root, split, preprocessing=preprocessing, cache=cache, cache_dir=cache_dir
        )
        for split in ("train", "test")
    }


def omniglot(
    data_dir: str | os.PathLike | None = None,
    protocol: str = "vinyals",
    image_size: int = 28,
    rotations: bool = True,
    *,
    split_seed: int | None = 0,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    tfds_data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> dict[str, FewShotEpisodes]:
    """Omniglot episode sources for a few-shot protocol.

    Protocols:

    - `"vinyals"` (Vinyals et al. 2016, Finn et al. 2017, learn2learn): both
      official sets pooled (1623 characters) and dealt out as 1100 train /
      100 validation / 423 test characters, in the order of
      `tfmeta.data.class_order(names, split_seed)`; learn2learn's
      "1200 for meta-training, 1100-1199 for validation" is the same cut.
    - `"lake"` (Lake et al. 2015): train on the 964 background characters,
      test on the 659 evaluation characters; no validation split.

    With `rotations=True` each character also appears turned by 90, 180 and
    270 degrees, as new classes within its split (x4: 4400 / 400 / 1692 for
    `"vinyals"`). Lake's original protocol had no rotations; pass
    `rotations=False` for it.

    Images are 28x28x1 float32 in `[0, 1]` with strokes 1 and paper 0 (see
    `omniglot_preprocessing`).

    Args:
        data_dir: see `omniglot_class_images`; `None` uses TFDS's builder.
        protocol: `"vinyals"` or `"lake"`.
        image_size: side of the square images.
        rotations: add the rotated classes.
        split_seed: orders the characters before the Vinyals cut (see
            `class_order`); `None` keeps them sorted by name, which puts
            whole alphabets in each split.
        cache, cache_dir, tfds_data_dir, download: see `omniglot_class_images`.

    Returns:
        `{"train", "validation", "test"}` (vinyals) or `{"train", "test"}`
        (lake) to `FewShotEpisodes`.

    Raises:
        ValueError: for an unknown protocol, or data without the 1623
            characters that the vinyals protocol splits.

    Example:

    >>> sources = tfmeta.data.omniglot("../shared/data/omniglot/omniglot.tar.gz")
    >>> train = sources["train"].episodes(ways=5, shots=1, queries=15, meta_batch_size=32, seed=0)
    """
    if protocol not in OMNIGLOT_PROTOCOLS:
        raise ValueError(
            f"Unknown Omniglot protocol {protocol!r}. Expected one of {list(OMNIGLOT_PROTOCOLS)}"
        )
    sets = omniglot_class_images(
        data_dir,
        image_size,
        cache=cache,
        cache_dir=cache_dir,
        tfds_data_dir=tfds_data_dir,
        download=download,
    )
    if protocol == "lake":
        splits = dict(sets)
    else:
        pooled = ClassImages.concatenate([sets["train"], sets["test"]])
        if pooled.num_base_classes != OMNIGLOT_NUM_CHARACTERS:
            raise ValueError(
                f"Expected the {OMNIGLOT_NUM_CHARACTERS} Omniglot characters for the 'vinyals' "
                f"protocol. Received: {pooled.num_base_classes} classes "
                f"({sets['train'].num_base_classes} train + {sets['test'].num_base_classes} test)"
            )
        splits = split_classes(pooled, dict(VINYALS_SPLIT_SIZES), seed=split_seed)
    if rotations:
        splits = {name: images.with_rotations() for name, images in splits.items()}
    return {
        name: FewShotEpisodes(images, name=f"omniglot/{protocol}/{name}")
        for name, images in splits.items()
    }


def _image_folder_root(path: Path, cache_dir) -> Path:
    """The folder holding `train/` and `test/`, extracting an archive first."""
    if path.is_file():
        path = extract_archive(path, cache_dir)
    if not path.is_dir():
        raise FileNotFoundError(
            "Expected an Omniglot ImageFolder directory (with train/ and test/) or a .tar.gz of "
            f"one. Received: {str(path)!r}, which does not exist"
        )
    candidates = [path] + sorted(p for p in path.iterdir() if p.is_dir())
    for candidate in candidates:
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise FileNotFoundError(
        "Expected an Omniglot ImageFolder directory with train/ and test/ folders. "
        f"Received: {str(path)!r} holding {sorted(p.name for p in path.iterdir())[:10]}"
    )


def _with_folder_names(images: ClassImages) -> ClassImages:
    """Renames TFDS labels `"<Alphabet>_<id>"` (id from 0) as `"<Alphabet>__character<NN>"`."""
    names = []
    for name in images.base_class_names:
        match = re.fullmatch(r"(.+)_(\d+)", name)
        names.append(f"{match[1]}__character{int(match[2]) + 1:02d}" if match else name)
    if len(set(names)) != len(names):
        names = images.base_class_names
    return ClassImages(images.images, images.counts, names, images.rotations)
