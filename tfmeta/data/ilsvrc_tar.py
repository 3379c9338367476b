"""Reading ImageNet-derived benchmarks straight from ILSVRC-2012's train tar, unextracted.

TFDS's `imagenet2012` manual directory holds `ILSVRC2012_img_train.tar`
(about 140 GB): a tar of 1,000 class tars (`n01440764.tar`), each holding that
class's JPEGs (`n01440764_10026.JPEG`, ...). mini-ImageNet and tieredImageNet
need 100 and 608 of those classes, so extracting it all would cost hours and
the disk space for nothing. Here the train tar is read in place: its headers
by seeking (one per class), then only the class tars of the benchmark's
classes, and of those only the images taken: the first `images_per_class`
files of each class in name order, exactly the images the extracted folder
gives (`tfmeta.data.imagenet_layouts.ilsvrc_files`), so both give the same
arrays and episodes.

Members are only read into memory, never written to disk, so member paths
(absolute, `..`, links) cannot reach anything; links and other non-files
are skipped. What lands on disk is the decoded-image cache, as for folders.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping, NamedTuple, Sequence

import tensorflow as tf

from tfmeta.data.archive import check_read_to_end
from tfmeta.data.benchmark_files import IMAGE_SUFFIXES, shown
from tfmeta.data.cache import class_images_cache_path, load_or_build
from tfmeta.data.class_images import ClassImages
from tfmeta.data.image_files import decode_image
from tfmeta.data.imagenet_layouts import WNID, first_images
from tfmeta.data.preprocessing import ImagePreprocessing

TRAIN_TAR = "ILSVRC2012_img_train.tar"  # the name in TFDS's imagenet2012 manual directory
_REPAIR = "copy or download ILSVRC2012_img_train.tar again"


class _Image(NamedTuple):
    """An image of a class tar: where its bytes lie in the train tar."""

    wnid: str
    name: str
    offset: int
    size: int


def ilsvrc_train_tar(path: Path) -> Path | None:
    """ILSVRC-2012's train tar that `path` names, or None if it names none (a folder layout).

    `path` is either the tar itself (any `.tar` file) or a folder holding
    `ILSVRC2012_img_train.tar`, as TFDS's `imagenet2012` manual directory does.
    """
    if path.is_file() and path.suffix.lower() == ".tar":
        return path
    if path.is_dir() and (path / TRAIN_TAR).is_file():
        return path / TRAIN_TAR
    return None


def missing_train_tar_hint(folder: Path) -> str:
    """For the error on an unrecognised folder: a sentence if it holds ILSVRC-2012's other tars
    (`ILSVRC2012_img_val.tar`, ...) but not the train tar, which the few-shot splits draw all
    their images from; else nothing."""
    others = sorted(p.name for p in folder.glob("ILSVRC2012_*.tar"))
    if not others:
        return ""
    return (
        f" It holds {shown(others)} but not {TRAIN_TAR}, the only ILSVRC-2012 tar the few-shot "
        "splits take images from (TFDS's imagenet2012 manual directory holds both)."
    )


def ilsvrc_tar_class_images(
    tar: Path,
    published: Mapping[str, Sequence[str]],
    what: str,
    images_per_class: int | None,
    preprocessing: ImagePreprocessing,
    *,
    benchmark: str,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, ClassImages]:
    """The decoded images of each published split, read from ILSVRC-2012's train tar.

    Every class is checked present before anything is decoded. Each split is
    cached as the folder layout's are, keyed by the tar's size and
    modification time (a changed tar is read afresh), the split's classes,
    `images_per_class` and the preprocessing; a cached split is loaded
    without opening its class tars.

    Args:
        tar: `ILSVRC2012_img_train.tar`.
        published: wnids per split.
        what: the split's name for messages (e.g. "Ravi & Larochelle's split").
        images_per_class: the first this many images of each class in file
            name order; None takes them all.
        preprocessing: applied to every decoded image.
        benchmark: prefix of the cache files' names (`<benchmark>-<split>`).
        cache: keep the decoded arrays under `cache_dir`.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Returns:
        `{split: ClassImages}` for the splits of `published`.

    Raises:
        FileNotFoundError: naming the classes missing from the tar, or a class
            with no (or too few) images.
        ValueError: for a tar, class tar or image that cannot be read.
    """
    try:
        outer = tarfile.open(tar, "r:")
    except tarfile.TarError as error:
        raise ValueError(
            f"Expected ILSVRC-2012's train tar (a tar of <wnid>.tar class tars). Received: "
            f"{str(tar)!r}, which cannot be read as a tar ({error}); {_REPAIR}"
        ) from error
    with outer:
        class_tars = _class_tars(outer, tar)
        _check_classes(class_tars, published, what, tar)
        splits = {}
        for split, wnids in published.items():
            path = None
            if cache:
                key = _cache_key(tar, wnids, images_per_class, preprocessing)
                path = class_images_cache_path(cache_dir, f"{benchmark}-{split}", *key)
            splits[split] = load_or_build(
                path,
                lambda wnids=wnids: _decoded(
                    tar, _split_images(outer, class_tars, wnids, tar, images_per_class),
                    preprocessing,
                ),
            )
        return splits


def _class_tars(outer: tarfile.TarFile, tar: Path) -> dict[str, tarfile.TarInfo]:
    """The class tars of the train tar (`<wnid>.tar`) by wnid; a damaged train tar refused."""
    try:
        members = outer.getmembers()
        check_read_to_end(outer)
    except tarfile.TarError as error:
        raise ValueError(
            f"Expected a complete ILSVRC-2012 train tar. Received: {str(tar)!r}, which is "
            f"truncated or damaged ({error}); {_REPAIR}"
        ) from error
    class_tars = {}
    for member in members:
        name = PurePosixPath(member.name).name
        if _is_file(member) and name.endswith(".tar") and WNID.fullmatch(name[: -len(".tar")]):
            class_tars[name[: -len(".tar")]] = member
    return class_tars


def _check_classes(
    class_tars: Mapping[str, tarfile.TarInfo],
    published: Mapping[str, Sequence[str]],
    what: str,
    tar: Path,
) -> None:
    """A FileNotFoundError naming the published classes the train tar lacks, if any."""
    wanted = [wnid for wnids in published.values() for wnid in wnids]
    absent = [wnid for wnid in wanted if wnid not in class_tars]
    if absent:
        raise FileNotFoundError(
            f"Expected a class tar <wnid>.tar for each of the {len(wanted)} classes of {what} in "
            f"the ILSVRC-2012 train tar {str(tar)!r}. Missing: {len(absent)} classes, "
            f"{shown(absent)}"
        )


def _split_images(
    outer: tarfile.TarFile,
    class_tars: Mapping[str, tarfile.TarInfo],
    wnids: Sequence[str],
    tar: Path,
    images_per_class: int | None,
) -> list[_Image]:
    """The images taken from the class tars of `wnids`."""
    return [
        image for wnid in wnids
        for image in _class_images(outer, class_tars[wnid], tar, images_per_class)
    ]


def _class_images(
    outer: tarfile.TarFile, member: tarfile.TarInfo, tar: Path, images_per_class: int | None
) -> list[_Image]:
    """The images taken from one class tar, in name order; only its headers are read."""
    wnid = PurePosixPath(member.name).name[: -len(".tar")]
    try:
        with tarfile.open(fileobj=outer.extractfile(member), mode="r:") as inner:
            members = inner.getmembers()
            check_read_to_end(inner)
    except tarfile.TarError as error:
        raise ValueError(
            f"Expected the class tar {member.name!r} in {str(tar)!r} to be a complete tar of "
            f"class {wnid}'s images. Received: one that is damaged ({error}); {_REPAIR}"
        ) from error
    images = sorted((m for m in members if _is_image(m)), key=lambda m: m.name)
    where = f"the class tar {member.name!r} of {str(tar)!r}"
    if not images:
        raise FileNotFoundError(
            f"Expected images of type {list(IMAGE_SUFFIXES)} in {where}. Received: none"
        )
    images = first_images(images, images_per_class, where)
    return [_Image(wnid, m.name, member.offset_data + m.offset_data, m.size) for m in images]


def _is_image(member: tarfile.TarInfo) -> bool:
    """An image file, by the suffixes the folder layouts take (`images_in`)."""
    return _is_file(member) and PurePosixPath(member.name).suffix.lower() in IMAGE_SUFFIXES


def _is_file(member: tarfile.TarInfo) -> bool:
    """A regular file whose bytes lie in one piece (not a link, folder, device or sparse file)."""
    return member.isfile() and not member.issparse()


def _cache_key(
    tar: Path,
    wnids: Sequence[str],
    images_per_class: int | None,
    preprocessing: ImagePreprocessing,
) -> tuple:
    """What a split's decoded images depend on: a tar of another size or time gets another key."""
    stat = tar.stat()
    return (
        "ilsvrc_train_tar", f"{stat.st_size}:{stat.st_mtime_ns}", sorted(wnids), images_per_class,
        preprocessing,
    )


def _decoded(tar: Path, images: Sequence[_Image], preprocessing: ImagePreprocessing) -> ClassImages:
    """Decodes `images` (read from `tar` one at a time, in parallel with decoding)."""
    spec = tf.TensorSpec([], tf.string)
    encoded = tf.data.Dataset.from_generator(
        lambda: _read(tar, images), output_signature=(spec, spec)
    )
    decoded = encoded.map(
        lambda data, wnid: (decode_image(data, preprocessing.channels), wnid),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    try:
        return ClassImages.from_dataset(decoded, preprocessing=preprocessing)
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(_first_undecodable(tar, images, preprocessing.channels)) from error


def _read(tar: Path, images: Sequence[_Image]) -> Iterator[tuple[bytes, str]]:
    """The bytes and wnid of each of `images`."""
    with open(tar, "rb") as f:
        for image in images:
            f.seek(image.offset)
            yield f.read(image.size), image.wnid


def _first_undecodable(tar: Path, images: Sequence[_Image], channels: int) -> str:
    """The message naming the first of `images` that TensorFlow cannot decode."""
    for (data, wnid), image in zip(_read(tar, images), images):
        try:
            decode_image(tf.constant(data), channels)
        except tf.errors.InvalidArgumentError as error:
            reason = error.message.splitlines()[0]
            return (
                f"Expected images TensorFlow can decode (PNG, JPEG, GIF, BMP). Received: "
                f"{image.name!r} in the class tar {wnid}.tar of {str(tar)!r}, which it cannot "
                f"({reason}); {_REPAIR}"
            )
    return f"Expected images TensorFlow can decode. Received: {str(tar)!r}, one of which failed"
