"""The shipped class splits: their published sizes, disjoint, and the published members."""

import pytest

import tfmeta.data


@pytest.mark.parametrize(
    "benchmark, sizes",
    [
        ("mini_imagenet", (64, 16, 20)),
        ("tiered_imagenet", (351, 97, 160)),
        ("cifar_fs", (64, 16, 20)),
        ("fc100", (12, 4, 4)),
    ],
)
def test_published_split_sizes_are_the_papers_and_disjoint(benchmark, sizes):
    split = tfmeta.data.published_split(benchmark)
    assert tuple(len(split[name]) for name in ("train", "validation", "test")) == sizes
    members = [m for names in split.values() for m in names]
    assert len(set(members)) == len(members)


def test_published_splits_hold_known_members():
    mini = tfmeta.data.published_split("mini_imagenet")
    assert mini["train"][0] == "n01532829" and "n01930112" in mini["test"]
    assert "n01855672" in mini["validation"]
    tiered = tfmeta.data.published_split("tiered_imagenet")
    assert tiered["train"][0] == "n01530575" and tiered["test"][-1] == "n07768694"
    assert "n02099267" in tiered["validation"]
    assert set(tfmeta.data.published_split("cifar_fs")["test"]) >= {"baby", "worm", "rocket"}
    assert tfmeta.data.published_split("fc100")["test"] == [
        "aquatic_mammals", "insects", "medium_mammals", "people"
    ]


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(ValueError, match="mini_imagenet"):
        tfmeta.data.published_split("tiered")
