"""Reading class images from tensorflow-datasets: registered builders and `tfds.ImageFolder`."""

from __future__ import annotations

import difflib
import os
import re
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta.data.cache import class_images_cache_path, directory_fingerprint, load_or_build
from tfmeta.data.class_images import ClassImages
from tfmeta.data.preprocessing import ImagePreprocessing


def tfds_class_images(
    name: Any,
    split: str,
    *,
    preprocessing: ImagePreprocessing | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    image_key: str = "image",
    label_key: str = "label",
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> ClassImages:
    """Reads one split of a TFDS dataset into memory, grouped by label.

    Args:
        name: a registered TFDS name (`"omniglot"`, `"mnist:3.0.1"`) or a
            `tfds.core.DatasetBuilder` (e.g. a `tfds.ImageFolder`).
        split: a TFDS split (`"train"`, `"train+test"`, `"train[:10%]"`).
        preprocessing: applied to every image (default: keep as is).
        data_dir: TFDS's data folder for `name` (default: TFDS's default).
        download: call `builder.download_and_prepare()` first.
        image_key: the image feature.
        label_key: the label feature; `ClassLabel` names become class names.
        cache: keep the decoded images in an `.npz` under `cache_dir` and
            reuse them on later calls.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Returns:
        A `ClassImages` with the classes of `split`, sorted by name.

    Raises:
        ValueError: for an unknown TFDS name (close matches are listed), an
            unknown split, a dataset without `image_key` or `label_key`, or an
            empty split.
        ConnectionError: within seconds, when the dataset must be downloaded
            and its download hosts cannot be reached (TFDS itself retries for
            minutes); the message names the offline alternatives.

    Example:

    >>> images = tfmeta.data.tfds_class_images("omniglot", "test",
    ...     preprocessing=tfmeta.data.ImagePreprocessing(28, channels=1, invert=True))
    """
    import tensorflow_datasets as tfds

    if isinstance(name, str):
        builder = _builder(name, data_dir)
        if download and not builder.is_prepared():
            _check_download_hosts(builder)
            builder.download_and_prepare()
    elif isinstance(name, tfds.core.DatasetBuilder):
        builder = name
    else:
        raise ValueError(
            "Expected a TFDS dataset name or a tfds.core.DatasetBuilder. "
            f"Received: {type(name).__name__}"
        )
    features = _check_features(builder, image_key, label_key)
    _check_split(builder, split)

    def build() -> ClassImages:
        return _read(builder, split, features, preprocessing, image_key, label_key)

    path = None
    if cache:
        split_info = builder.info.splits[split] if split in builder.info.splits else None
        path = class_images_cache_path(
            cache_dir,
            f"{builder.name}-{split}",
            "tfds",
            builder.info.full_name,
            str(builder.data_dir),
            split,
            getattr(split_info, "num_examples", None),
            image_key,
            label_key,
            preprocessing,
        )
    return load_or_build(path, build)


def image_folder_class_images(
    root_dir: str | os.PathLike,
    split: str,
    *,
    preprocessing: ImagePreprocessing | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> ClassImages:
    """Reads one split of a `tfds.ImageFolder` layout (`<root>/<split>/<class>/<image>`).

    Class names are the class folder names. The decoded images are cached
    under `cache_dir`, keyed by the relative paths and the bytes of the
    split's files (`directory_fingerprint`) and by `preprocessing`, so a
    second call (in any process) loads an `.npz` instead of decoding again,
    and a replaced image is decoded afresh.

    Args:
        root_dir: the ImageFolder root (for Omniglot, the extracted `omniglot/`
            folder of `../shared/data/omniglot/omniglot.tar.gz`).
        split: a split folder under `root_dir`.
        preprocessing: applied to every image (default: keep as is).
        cache: use the on-disk cache.
        cache_dir: the cache root (default: `tfmeta.data.default_cache_dir()`).

    Returns:
        A `ClassImages` of the split's classes, sorted by name.

    Raises:
        FileNotFoundError: if `root_dir` or its split folder does not exist.
        ValueError: if the split holds no images (no file of a type in
            `IMAGE_FOLDER_SUFFIXES`).

    Example:

    >>> root = tfmeta.data.extract_archive("../shared/data/omniglot/omniglot.tar.gz") / "omniglot"
    >>> images = tfmeta.data.image_folder_class_images(root, "train",
    ...     preprocessing=tfmeta.data.ImagePreprocessing(28, channels=1, invert=True))
    >>> images.num_classes
    964
    """
    root = Path(root_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Expected an ImageFolder directory (<root>/<split>/<class>/<image>). "
            f"Received: {str(root)!r}, which does not exist"
        )
    splits = sorted(p.name for p in root.iterdir() if p.is_dir())
    if split not in splits:
        raise FileNotFoundError(
            f"Expected split {split!r} as a folder of {str(root)!r}. Received splits: {splits}"
        )
    _check_image_files(root / split)

    def build() -> ClassImages:
        import tensorflow_datasets as tfds

        builder = tfds.ImageFolder(str(root))
        features = _check_features(builder, "image", "label")
        return _read(builder, split, features, preprocessing, "image", "label")

    path = None
    if cache:
        fingerprint = directory_fingerprint(root / split)
        path = class_images_cache_path(
            cache_dir, f"{root.name}-{split}", "image_folder", fingerprint, preprocessing
        )
    return load_or_build(path, build)


# The file types `tfds.ImageFolder` reads; it skips every other file.
IMAGE_FOLDER_SUFFIXES = (".jpg", ".jpeg", ".png")


def _check_image_files(split_dir: Path) -> None:
    """Raises a ValueError if `split_dir` holds no file `tfds.ImageFolder` would read."""
    suffixes = set()
    for path in split_dir.rglob("*"):
        if path.is_file():
            if path.suffix.lower() in IMAGE_FOLDER_SUFFIXES:
                return
            suffixes.add(path.suffix.lower() or "(none)")
    found = f"only files of type {sorted(suffixes)}" if suffixes else "no files"
    raise ValueError(
        f"Expected images of type {list(IMAGE_FOLDER_SUFFIXES)} in {str(split_dir)!r} "
        f"(<split>/<class>/<image>). Received: {found}; convert them to PNG or JPEG"
    )


def _builder(name: str, data_dir):
    """`tfds.builder(name)`, with a ValueError listing close names when unknown."""
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
    except tfds.core.registered.DatasetNotFoundError as error:
        known = tfds.list_builders(with_community_datasets=False)
        base = re.split(r"[/:]", name)[0]
        close = difflib.get_close_matches(base, known, n=5, cutoff=0.6)
        hint = f" Close matches: {close}." if close else ""
        raise ValueError(
            f"Unknown TFDS dataset name {name!r}.{hint} Expected one of the {len(known)} "
            f"registered names (tfds.list_builders()), e.g. {known[:5]}"
        ) from error


# TFDS fetches prepared datasets from Google Cloud Storage when it can.
_GCS_HOST = "storage.googleapis.com"
PROBE_SECONDS = 5.0


def unreachable_hosts(urls: list[str], timeout: float = PROBE_SECONDS) -> dict[str, str]:
    """The hosts of `urls` that a TCP connection cannot reach within `timeout`, with the reason.

    All hosts are probed at once, each in a daemon thread, so an unanswered
    name lookup cannot hold the caller longer than `timeout`.
    """
    addresses = {}
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname:
            addresses[parts.hostname] = parts.port or (80 if parts.scheme == "http" else 443)
    reasons: dict[str, str] = {}

    def probe(host: str, port: int) -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            reasons[host] = ""
        except OSError as error:
            reasons[host] = str(error) or type(error).__name__

    threads = [
        threading.Thread(target=probe, args=item, daemon=True) for item in addresses.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {
        host: reasons.get(host, f"no answer within {timeout:g} s")
        for host in addresses
        if reasons.get(host) != ""
    }


def _check_download_hosts(builder) -> None:
    """Raises a ConnectionError if a dataset that needs downloading cannot be downloaded."""
    urls = sorted(builder.url_infos or {}) or [f"https://{_GCS_HOST}/"]
    unreachable = unreachable_hosts(urls)
    if unreachable:
        host, reason = next(iter(unreachable.items()))
        raise ConnectionError(
            f"TFDS dataset {builder.name!r} is not prepared in {str(builder.data_dir)!r} and "
            f"its download host {host} cannot be reached ({reason}). Prepare it where there is "
            f"a network (`tfds build {builder.name}`) and pass its data_dir, or read the images "
            "from a folder <root>/<split>/<class>/<image> "
            "(tfmeta.data.FewShotEpisodes.from_image_folder)"
        )


def _check_features(builder, image_key: str, label_key: str):
    features = builder.info.features
    keys = sorted(features.keys()) if hasattr(features, "keys") else []
    missing = [key for key in (image_key, label_key) if key not in keys]
    if missing:
        supervised = builder.info.supervised_keys
        hint = f" Its supervised_keys are {supervised}." if supervised else ""
        raise ValueError(
            f"Expected TFDS dataset {builder.name!r} to have an image feature {image_key!r} and a "
            f"label feature {label_key!r}. Missing: {missing}; received features: {keys}.{hint} "
            "Pass image_key= and label_key= to choose others."
        )
    return features


def _check_split(builder, split: str) -> None:
    known = list(builder.info.splits.keys())
    if not known:  # Not prepared yet (or mocked): let TFDS judge.
        return
    for part in split.split("+"):
        part = part.split("[")[0].strip()
        if part not in known:
            raise ValueError(
                f"Unknown split {part!r} of TFDS dataset {builder.name!r}. "
                f"Expected one of {sorted(known)}"
            )


def _read(builder, split, features, preprocessing, image_key, label_key) -> ClassImages:
    import tensorflow_datasets as tfds

    image_feature = features[image_key]
    label_feature = features[label_key]
    decoders = None
    if isinstance(image_feature, tfds.features.Image) and image_feature.np_dtype == np.uint8:
        # Decode ourselves, straight to the channels we keep: faster than
        # decoding to RGB and converting.
        channels = (
            preprocessing.channels if preprocessing is not None else (image_feature.shape[-1] or 0)
        )
        decoders = {image_key: tfds.decode.SkipDecoding()}

        def decode(data):
            return tf.io.decode_image(data, channels=channels, expand_animations=False)

    else:

        def decode(image):
            return image

    dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
    dataset = dataset.map(
        lambda ex: (decode(ex[image_key]), ex[label_key]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    class_names = (
        label_feature.names if isinstance(label_feature, tfds.features.ClassLabel) else None
    )
    try:
        return ClassImages.from_dataset(
            dataset, preprocessing=preprocessing, class_names=class_names
        )
    except ValueError as error:
        if "empty dataset" in str(error):
            raise ValueError(
                f"Expected split {split!r} of {builder.name!r} to hold at least one example. "
                "Received: an empty split"
            ) from error
        raise
