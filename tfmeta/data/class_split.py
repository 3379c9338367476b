"""Splitting classes (not images) between meta-training, validation and test."""

from __future__ import annotations

import hashlib
import numbers
from typing import Mapping, Sequence

from tfmeta.data.class_images import ClassImages


def class_order(class_names: Sequence[str], seed: int | None = None) -> list[str]:
    """The reproducible order in which classes are dealt out to splits.

    Names are sorted by Unicode code point; with a `seed`, they are then
    ordered by `sha256(f"{seed}/{name}")`, a shuffle that is the same on every
    platform and library version, and in which a class keeps its place
    relative to the others when classes are added or removed.

    Args:
        class_names: the names to order.
        seed: `None` keeps the sorted order.

    Returns:
        The names, in dealing order.
    """
    names = sorted(class_names)
    if seed is None:
        return names
    return sorted(
        names, key=lambda name: hashlib.sha256(f"{seed}/{name}".encode("utf-8")).hexdigest()
    )


def split_classes(
    class_images: ClassImages,
    splits: Mapping[str, int | None] | Mapping[str, Sequence[str]],
    seed: int | None = None,
) -> dict[str, ClassImages]:
    """Deals the base classes of `class_images` out to disjoint splits.

    Rotated copies of a class always go with it, so no character leaks
    between splits through its rotations.

    Args:
        class_images: the classes to split.
        splits: either sizes, `{"train": 1100, "validation": 100, "test": 423}`,
            taken in order from `class_order(names, seed)` (one size may be
            `None`, meaning "the rest"; the sizes must use every class), or
            explicit base class names per split, `{"train": [...], "test":
            [...]}` (classes listed nowhere are left out).
        seed: see `class_order`; only used with sizes.

    Returns:
        A dict from split name to `ClassImages`, in the order of `splits`.

    Raises:
        ValueError: for an empty split, sizes that do not add up to the
            number of classes, an unknown class name, or a class listed in
            two splits.

    Example:

    >>> sizes = {"train": 1100, "validation": 100, "test": None}
    >>> parts = tfmeta.data.split_classes(images, sizes, seed=0)
    """
    if not splits:
        raise ValueError("Expected at least one split. Received: splits={}")
    values = list(splits.values())
    if all(
        v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool)) for v in values
    ):
        assignment = _deal(class_images.base_class_names, dict(splits), seed)
    elif all(isinstance(v, Sequence) and not isinstance(v, str) for v in values):
        assignment = _check_lists(class_images.base_class_names, dict(splits))
    else:
        raise ValueError(
            "Expected splits to map names either all to class counts (int or None) or all to "
            "lists of class names. Received: "
            f"{dict((k, type(v).__name__) for k, v in splits.items())}"
        )
    return {split: class_images.select(names) for split, names in assignment.items()}


def _deal(names: list[str], sizes: dict[str, int | None], seed: int | None) -> dict[str, list[str]]:
    for split, size in sizes.items():
        if size is not None and size < 1:
            raise ValueError(
                f"Expected at least one class in split {split!r}. Received: {split}={size}"
            )
    rest = [split for split, size in sizes.items() if size is None]
    if len(rest) > 1:
        raise ValueError(f"Expected at most one split of size None (the rest). Received: {rest}")
    fixed = sum(size for size in sizes.values() if size is not None)
    if rest:
        if fixed >= len(names):
            raise ValueError(
                f"Expected at least one class left for split {rest[0]!r}. Received: {len(names)} "
                f"classes, all taken by the other splits ({fixed})"
            )
        sizes[rest[0]] = len(names) - fixed
    elif fixed != len(names):
        raise ValueError(
            f"Expected split sizes adding up to the {len(names)} classes. Received: {sizes} "
            f"(sum {fixed})"
        )
    order = class_order(names, seed)
    assignment, start = {}, 0
    for split, size in sizes.items():
        assignment[split] = order[start : start + size]
        start += size
    return assignment


def _check_lists(names: list[str], lists: dict[str, Sequence[str]]) -> dict[str, list[str]]:
    known = set(names)
    owner: dict[str, str] = {}
    for split, members in lists.items():
        if len(members) == 0:
            raise ValueError(
                f"Expected at least one class in split {split!r}. Received: an empty list"
            )
        unknown = [name for name in members if name not in known]
        if unknown:
            raise ValueError(
                f"Unknown class names in split {split!r}: {unknown[:5]}. Expected names from the "
                f"{len(names)} base classes, e.g. {names[:3]}"
            )
        for name in members:
            if name in owner:
                if owner[name] == split:
                    raise ValueError(
                        f"Expected each class once per split. Received: {name!r} twice in {split!r}"
                    )
                raise ValueError(
                    f"Expected disjoint splits. Received: class {name!r} in both "
                    f"{owner[name]!r} and {split!r}"
                )
            owner[name] = split
    return {split: list(members) for split, members in lists.items()}
