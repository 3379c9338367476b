import pytest

import tfmeta.data


def test_sizes_deal_every_class_to_exactly_one_split(toy_class_images):
    data = toy_class_images(num_classes=12, per_class=2)
    parts = tfmeta.data.split_classes(data, {"train": 7, "validation": 2, "test": 3}, seed=0)
    assert [p.num_base_classes for p in parts.values()] == [7, 2, 3]
    names = [set(p.base_class_names) for p in parts.values()]
    assert set.union(*names) == set(data.base_class_names)
    assert sum(len(n) for n in names) == 12  # disjoint


def test_split_order_is_reproducible_and_set_by_the_seed(toy_class_images):
    data = toy_class_images(num_classes=30, per_class=1)

    def split(seed):
        return tfmeta.data.split_classes(data, {"a": 10, "b": None}, seed=seed)[
            "a"
        ].base_class_names

    assert split(0) == split(0)
    assert split(0) != split(1)
    assert split(None) == [f"class{i:03d}" for i in range(10)]  # sorted order, no shuffle
    assert tfmeta.data.class_order(["b", "c", "a"]) == ["a", "b", "c"]
    # The order does not depend on the order names come in.
    assert tfmeta.data.class_order(["b", "c", "a"], 3) == tfmeta.data.class_order(
        ["a", "c", "b"], 3
    )


def test_rotated_copies_go_with_their_class(toy_class_images):
    data = toy_class_images(num_classes=6, per_class=1).with_rotations()
    parts = tfmeta.data.split_classes(data, {"train": 4, "test": 2}, seed=0)
    assert parts["train"].num_classes == 16 and parts["test"].num_classes == 8
    train_bases = {n.split("@")[0] for n in parts["train"].class_names}
    test_bases = {n.split("@")[0] for n in parts["test"].class_names}
    assert not train_bases & test_bases


def test_user_defined_splits_by_name(toy_class_images):
    data = toy_class_images(num_classes=5, per_class=1)
    parts = tfmeta.data.split_classes(
        data, {"train": ["class000", "class002"], "test": ["class004"]}
    )
    assert parts["train"].base_class_names == ["class000", "class002"]
    assert parts["test"].base_class_names == ["class004"]


@pytest.mark.parametrize(
    "splits, message",
    [
        (
            {"train": ["class000", "class001"], "test": ["class001"]},
            r"Expected disjoint splits\. Received: class 'class001' in both 'train' and 'test'",
        ),
        (
            {"train": ["class000"], "test": []},
            r"Expected at least one class in split 'test'\. Received: an empty list",
        ),
        (
            {"train": 5, "test": 0},
            r"Expected at least one class in split 'test'\. Received: test=0",
        ),
        (
            {"train": 3, "test": 3},
            r"Expected split sizes adding up to the 5 classes\. Received: .*sum 6",
        ),
        ({"train": 5, "test": None}, r"at least one class left for split 'test'"),
        ({"train": ["cat"]}, r"Unknown class names in split 'train': \['cat'\]"),
        ({"train": 3, "test": ["class000"]}, r"either all to class counts"),
        ({}, r"Expected at least one split"),
    ],
)
def test_bad_splits_raise(toy_class_images, splits, message):
    with pytest.raises(ValueError, match=message):
        tfmeta.data.split_classes(toy_class_images(num_classes=5, per_class=1), splits)
