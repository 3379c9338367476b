"""The published class splits of the few-shot benchmarks, shipped with the package.

Each benchmark's split is a small CSV file in `tfmeta/data/splits/` with a
header `split,<unit>` and one row per class (or superclass):

- `mini_imagenet.csv` (`split,class`): Ravi & Larochelle (2017), 64 / 16 / 20
  ImageNet synsets (wnids), the class lists of their `train.csv`, `val.csv`
  and `test.csv`.
- `cifar_fs.csv` (`split,class`): Bertinetto et al. (2019), 64 / 16 / 20
  CIFAR-100 fine classes.
- `fc100.csv` (`split,superclass`): Oreshkin et al. (2018), 12 / 4 / 4
  CIFAR-100 superclasses (60 / 20 / 20 fine classes).
- `tiered_imagenet.csv` (`split,class`): Ren et al. (2018), 351 / 97 / 160
  ImageNet synsets of 20 / 6 / 8 super-categories. The train and validation
  lists are those of Ren et al.'s `train.csv` and `val.csv`, equal to a second
  public copy; the test list comes from one public copy only (their
  `test.csv` was not at hand), checked for 160 wnids disjoint from the rest.

CUB's split (Chen et al. 2019, "A Closer Look at Few-shot Classification")
is a rule over the sorted class folders, not a list; see `tfmeta.data.cub`.
The mini-ImageNet, CIFAR-FS and FC100 lists were transcribed, then checked
against two independent public copies each; the tests check the sizes and
disjointness of every list.
"""

from __future__ import annotations

import csv
import io

import importlib_resources

SPLIT_NAMES = ("train", "validation", "test")
PUBLISHED_SPLITS = ("mini_imagenet", "tiered_imagenet", "cifar_fs", "fc100")


def published_split(benchmark: str) -> dict[str, list[str]]:
    """The class (or superclass) names of each split of `benchmark`, as published.

    Args:
        benchmark: one of `PUBLISHED_SPLITS`.

    Returns:
        `{"train": [...], "validation": [...], "test": [...]}`, each list in
        the order of the shipped file.

    Raises:
        ValueError: for an unknown benchmark.

    Example:

    >>> split = tfmeta.data.published_split("mini_imagenet")
    >>> [len(split[name]) for name in ("train", "validation", "test")]
    [64, 16, 20]
    """
    if benchmark not in PUBLISHED_SPLITS:
        raise ValueError(
            f"Unknown benchmark {benchmark!r}. Expected one of {list(PUBLISHED_SPLITS)}"
        )
    text = (
        importlib_resources.files("tfmeta.data")
        .joinpath("splits", f"{benchmark}.csv")
        .read_text(encoding="utf-8")
    )
    rows = list(csv.reader(io.StringIO(text)))
    split: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for name, member in rows[1:]:
        split[name].append(member)
    return split
