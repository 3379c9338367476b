"""Tiny copies of the benchmarks' on-disk layouts: real file and folder names, synthetic pixels.

Every image is 8x8 and says who it is (its red channel holds the class's
position in the published lists), so tests can read the class back.
"""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path
from typing import Mapping

import numpy as np
import tensorflow as tf

import tfmeta.data

SPLIT_CSVS = {"train": "train.csv", "validation": "val.csv", "test": "test.csv"}

# CIFAR-100's superclasses and their fine classes (the dataset's own grouping).
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}


def write_jpeg(path: Path, value: int) -> None:
    """An 8x8 JPEG whose red channel is `value` (JPEG keeps flat colours nearly exact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros([8, 8, 3], np.uint8)
    pixels[..., 0] = value
    path.write_bytes(tf.io.encode_jpeg(pixels).numpy())


def mini_imagenet_wnids() -> list[str]:
    split = tfmeta.data.published_split("mini_imagenet")
    return split["train"] + split["validation"] + split["test"]


def write_mini_imagenet_csv_layout(root: Path, per_class: int = 2) -> Path:
    """`images/<wnid><8 digits>.jpg` with `train.csv`, `val.csv`, `test.csv` (filename,label)."""
    split = tfmeta.data.published_split("mini_imagenet")
    position = {wnid: i for i, wnid in enumerate(mini_imagenet_wnids())}
    for name, csv_name in SPLIT_CSVS.items():
        with open(root / csv_name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["filename", "label"])
            for wnid in split[name]:
                for index in range(per_class):
                    filename = f"{wnid}{index * 7 + 5:08d}.jpg"
                    write_jpeg(root / "images" / filename, position[wnid])
                    writer.writerow([filename, wnid])
    return root


def write_mini_imagenet_folders(
    root: Path, per_class: int = 2, by_split: bool = True, benchmark: str = "mini_imagenet"
) -> Path:
    """`train/<wnid>/`, `val/<wnid>/`, `test/<wnid>/` (by split) or ILSVRC's
    `<wnid>/<wnid>_<n>.JPEG`, for the classes of `benchmark` (mini_imagenet or tiered_imagenet)."""
    split = tfmeta.data.published_split(benchmark)
    wnids = split["train"] + split["validation"] + split["test"]
    position = {wnid: i % 256 for i, wnid in enumerate(wnids)}
    folders = {"train": "train", "validation": "val", "test": "test"}
    for name, wnids in split.items():
        for wnid in wnids:
            folder = root / folders[name] / wnid if by_split else root / wnid
            for index in range(per_class):
                write_jpeg(folder / f"{wnid}_{index + 10}.JPEG", position[wnid])
    return root


def class_tar(folder: Path) -> bytes:
    """The class tar ILSVRC's train tar holds for `folder` (`<wnid>/`): its images by bare name,
    in reverse name order, so that readers must sort them as the folder layout does."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for path in sorted(folder.iterdir(), reverse=True):
            tar.add(path, arcname=path.name)
    return data.getvalue()


def write_tar(path: Path, members: Mapping[str, bytes], mode: str = "w") -> Path:
    """A tar at `path` holding `members` (name -> bytes), e.g. the train tar's class tars;
    `mode` as `tarfile.open` takes it (`"w:gz"` compresses)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_ilsvrc_train_tar(manual_dir: Path, ilsvrc: Path) -> Path:
    """TFDS's imagenet2012 manual directory: `ILSVRC2012_img_train.tar` with one `<wnid>.tar`
    per class folder of the ILSVRC train folder `ilsvrc`, and `ILSVRC2012_img_val.tar` beside it."""
    members = {f"{folder.name}.tar": class_tar(folder) for folder in sorted(ilsvrc.iterdir())}
    write_tar(manual_dir / "ILSVRC2012_img_val.tar", {"ILSVRC2012_val_00000001.JPEG": b""})
    return write_tar(manual_dir / "ILSVRC2012_img_train.tar", members)


def cifar100_names() -> tuple[list[str], list[str], dict[str, str]]:
    """Fine names and superclass names in CIFAR-100's label order (alphabetical), and the map."""
    coarse = sorted(CIFAR100_SUPERCLASSES)
    superclass_of = {f: c for c, fines in CIFAR100_SUPERCLASSES.items() for f in fines}
    return sorted(superclass_of), coarse, superclass_of


def write_cifar100_binary(root: Path, train_per_class: int = 3, test_per_class: int = 1) -> Path:
    """`cifar-100-binary/` with `train.bin`, `test.bin` and the two label-name files."""
    folder = root / "cifar-100-binary"
    folder.mkdir(parents=True)
    fine, coarse, superclass_of = cifar100_names()
    (folder / "fine_label_names.txt").write_text("\n".join(fine) + "\n")
    (folder / "coarse_label_names.txt").write_text("\n".join(coarse) + "\n")
    for name, per_class in (("train.bin", train_per_class), ("test.bin", test_per_class)):
        records = []
        for fine_id, fine_name in enumerate(fine):
            for _ in range(per_class):
                pixels = np.zeros([3, 32, 32], np.uint8)
                pixels[0] = fine_id  # red plane
                coarse_id = coarse.index(superclass_of[fine_name])
                records.append(np.concatenate([[coarse_id, fine_id], pixels.reshape(-1)]))
        np.asarray(records, np.uint8).tofile(folder / name)
    return folder


def write_cub(root: Path, per_class: int = 1) -> Path:
    """`CUB_200_2011/images/<NNN>.<Name>/<Name>_<n>_<n>.jpg`, 200 classes numbered 001..200."""
    images = root / "CUB_200_2011" / "images"
    for number in range(1, 201):
        folder = images / f"{number:03d}.Bird_{number:03d}"
        for index in range(per_class):
            write_jpeg(folder / f"Bird_{number:03d}_{index}_{number}.jpg", number)
    return root / "CUB_200_2011"


def red_values(batch_x: np.ndarray) -> np.ndarray:
    """The red value (0..255) each image of `[n, H, W, 3]` episodes says it has."""
    return np.rint(np.asarray(batch_x)[:, 4, 4, 0] * 255).astype(int)
