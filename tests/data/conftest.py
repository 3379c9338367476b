"""Data fixtures: toy class images and the real Omniglot, decoded once per session."""

from __future__ import annotations


import numpy as np
import pytest

import tfmeta.data
import tfmeta.data.tfds_images


def _toy_class_images(
    num_classes: int = 12, per_class=20, size: int = 6
) -> tfmeta.data.ClassImages:
    """Classes whose images say who they are: pixel (0, 0) = class id, (0, 1) = example id.

    `per_class` is an int or one count per class (ragged classes).
    """
    counts = [per_class] * num_classes if np.isscalar(per_class) else list(per_class)
    images = np.zeros([sum(counts), size, size, 1], np.uint8)
    row = 0
    for class_id, count in enumerate(counts):
        for example in range(count):
            images[row, 0, 0, 0] = class_id
            images[row, 0, 1, 0] = example
            row += 1
    names = [f"class{i:03d}" for i in range(num_classes)]
    return tfmeta.data.ClassImages(images, counts, names)


def _identities(x: np.ndarray) -> list[tuple[int, int]]:
    """(class id, example id) of each image of a batch `[n, H, W, 1]` of toy episodes."""
    pixels = np.rint(x[:, 0, :2, 0] * 255).astype(int)
    return [tuple(p) for p in pixels]


@pytest.fixture(autouse=True)
def tfds_downloads_reachable(monkeypatch):
    """TFDS's download hosts count as reachable: these tests mock TFDS (`tfds.testing.mock_data`)
    on machines with or without a network; the offline tests make them unreachable themselves."""
    monkeypatch.setattr(tfmeta.data.tfds_images, "unreachable_hosts", lambda urls: {})


@pytest.fixture(scope="session")
def toy_class_images():
    """A factory of toy `ClassImages`, see `_toy_class_images`."""
    return _toy_class_images


@pytest.fixture(scope="session")
def identities():
    """Reads (class id, example id) back from toy episode images, see `_identities`."""
    return _identities
