"""mini-ImageNet (Vinyals et al. 2016; Ravi & Larochelle 2017 split) from images the user holds.

The module is not named `mini_imagenet` so that `tfmeta.data.mini_imagenet` is
unambiguously the entry-point function.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from tfmeta.data.benchmark_files import refuse_pickle, shown
from tfmeta.data.few_shot import FewShotEpisodes
from tfmeta.data.imagenet_benchmarks import imagenet_benchmark, unrecognised_layout
from tfmeta.data.imagenet_layouts import (
    has_split_folders,
    has_wnid_folders,
    ilsvrc_files,
    split_folder_files,
)

# The split files of the widely shared folder, by split.
CSV_FILES = {"train": "train.csv", "validation": "val.csv", "test": "test.csv"}
_SPLIT = "Ravi & Larochelle's split"
_LAYOUTS = (
    "the shared folder: images/ holding <wnid><index>.jpg with train.csv, val.csv and test.csv "
    "(filename,label) beside it; a copy laid out by split: train/, val/, test/ holding one "
    "folder per wnid; an ILSVRC-2012 train folder holding one folder per wnid; or "
    "ILSVRC2012_img_train.tar or the folder holding it (TFDS's imagenet2012 manual directory)"
)


def mini_imagenet(
    data_dir: str | os.PathLike,
    image_size: int = 84,
    *,
    images_per_class: int = 600,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, FewShotEpisodes]:
    """mini-ImageNet episode sources with Ravi & Larochelle's 64 / 16 / 20 class split.

    Reads, without downloading anything, one of four layouts of `data_dir`:

    - the widely shared folder: `images/` with the 60,000 JPEGs
      (`n0153282900000005.jpg`, ...) and the split files `train.csv`,
      `val.csv`, `test.csv` (`filename,label`) beside it (or inside `images/`).
      The files listed in the CSVs are read: the exact published images.
    - a copy laid out by split: `train/`, `val/`, `test/`, each holding one
      folder per wnid; every image in them is read.
    - an ILSVRC-2012 train folder (`<wnid>/<wnid>_<n>.JPEG`): the first
      `images_per_class` files of each of the 100 classes in sorted name
      order. The classes are the published ones; the images are not
      necessarily the ones the CSVs select (those CSVs name images by an
      index of their own), so numbers from this layout are close to, not
      identical with, the benchmark's.
    - ILSVRC-2012's train tar, unextracted: `ILSVRC2012_img_train.tar`
      itself or the folder holding it (TFDS's `imagenet2012` manual
      directory). Only the 100 classes' tars inside it are opened and only
      the images taken are read (`tfmeta.data.ilsvrc_tar`): the same images,
      arrays and episodes as the extracted folder.

    The class split ships with tfmeta (`tfmeta.data.published_split(
    "mini_imagenet")`); CSVs that list other classes are refused. Pickle files
    (`mini-imagenet-cache-*.pkl`) are never read: unpickling runs code.
    Images are resized to `image_size` (Lanczos, as PIL's `LANCZOS` in the
    common conversion scripts), RGB, float32 in `[0, 1]` in episodes; decoded
    arrays are cached (about 1.3 GB at 84x84 for all 60,000 images).

    Args:
        data_dir: the folder (or train tar), in one of the layouts above.
        image_size: side of the square images (84 is the standard).
        images_per_class: images taken per class from an ILSVRC folder or tar.
        cache: keep decoded arrays under `cache_dir` (see `tfmeta.data.cache`).
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Returns:
        `{"train", "validation", "test"}` to `FewShotEpisodes` (64, 16, 20 classes).

    Raises:
        FileNotFoundError: naming the split files, classes or images that are
            missing and the folder or tar they were looked for in (or the
            train tar missing from a manual directory).
        ValueError: for a pickle file, CSVs listing other classes than the
            published split, a damaged tar, or an image that cannot be decoded.

    Example:

    >>> sources = tfmeta.data.mini_imagenet("path/to/mini-imagenet")
    >>> train = sources["train"].episodes(ways=5, shots=1, queries=15, meta_batch_size=4)
    """
    root = Path(data_dir)
    refuse_pickle(root, "the folder of JPEG images with its split CSVs")
    return imagenet_benchmark(
        root, "mini_imagenet", "mini-ImageNet", _LAYOUTS, _SPLIT, _split_files,
        image_size=image_size, images_per_class=images_per_class, cache=cache,
        cache_dir=cache_dir,
    )


def _split_files(root: Path, published, images_per_class: int):
    """`{split: (paths, class names)}` for whichever layout `root` holds."""
    images = root / "images"
    csv_dir = next(
        (d for d in (root, images) if any((d / f).is_file() for f in CSV_FILES.values())), None
    )
    if images.is_dir() and csv_dir is not None:
        return _csv_layout(images, csv_dir, published)
    if has_split_folders(root):
        return split_folder_files(root, published, _SPLIT)
    if has_wnid_folders(root):
        return ilsvrc_files(root, published, _SPLIT, images_per_class)
    raise unrecognised_layout(root, "mini-ImageNet", _LAYOUTS)


def _csv_layout(images: Path, csv_dir: Path, published):
    missing = [name for name in CSV_FILES.values() if not (csv_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Expected the mini-ImageNet split files {list(CSV_FILES.values())} in "
            f"{str(csv_dir)!r}. Missing: {missing}"
        )
    files = {}
    for split, csv_name in CSV_FILES.items():
        rows = _read_csv(csv_dir / csv_name)
        listed = sorted({label for _, label in rows})
        if listed != sorted(published[split]):
            extra = sorted(set(listed) - set(published[split]))
            absent = sorted(set(published[split]) - set(listed))
            raise ValueError(
                f"Expected {csv_name} to list the {len(published[split])} {split} classes of "
                f"Ravi & Larochelle's split. Received: {str(csv_dir / csv_name)!r} with "
                f"{len(listed)} classes; not in the split: {shown(extra)}; missing: {shown(absent)}"
            )
        paths = [images / filename for filename, _ in rows]
        absent_files = [path.name for path in paths if not path.is_file()]
        if absent_files:
            raise FileNotFoundError(
                f"Expected the {len(paths)} images listed in {csv_name} in {str(images)!r}. "
                f"Missing: {len(absent_files)} files, {shown(absent_files)}"
            )
        files[split] = (paths, [label for _, label in rows])
    return files


def _read_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows or [cell.strip() for cell in rows[0]] != ["filename", "label"]:
        raise ValueError(
            f"Expected a CSV file with the header 'filename,label'. Received: {str(path)!r} "
            f"starting with {rows[0] if rows else 'nothing'}"
        )
    bad = [row for row in rows[1:] if len(row) != 2]
    if bad:
        raise ValueError(
            f"Expected two columns (filename,label) in every row of {str(path)!r}. "
            f"Received: {bad[0]}"
        )
    return [(filename.strip(), label.strip()) for filename, label in rows[1:]]
