import numpy as np
import pytest
import tensorflow as tf

import tfmeta.data
from tfmeta.data.episode import EPISODE_KEYS


def first(dataset):
    return {key: value.numpy() for key, value in next(iter(dataset)).items()}


def test_element_spec_is_declared_before_iteration_and_matches(toy_class_images):
    source = tfmeta.data.FewShotEpisodes(toy_class_images())
    declared = source.element_spec(ways=5, shots=2, queries=3, meta_batch_size=4)
    dataset = source.episodes(ways=5, shots=2, queries=3, meta_batch_size=4, seed=0)
    assert dataset.element_spec == declared
    assert declared["support_x"] == tf.TensorSpec([4, 10, 6, 6, 1], tf.float32)
    assert declared["support_y"] == tf.TensorSpec([4, 10], tf.int32)
    assert declared["query_x"] == tf.TensorSpec([4, 15, 6, 6, 1], tf.float32)
    assert declared["query_y"] == tf.TensorSpec([4, 15], tf.int32)
    single = source.episodes(ways=5, shots=2, queries=3, seed=0)
    assert single.element_spec == source.element_spec(5, 2, 3)
    episode = first(single)
    assert sorted(episode) == sorted(EPISODE_KEYS)
    assert episode["support_x"].shape == (10, 6, 6, 1) and episode["support_x"].dtype == np.float32
    assert episode["query_y"].shape == (15,) and episode["query_y"].dtype == np.int32


def test_episode_draws_distinct_classes_and_disjoint_support_and_query(
    toy_class_images, identities
):
    source = tfmeta.data.FewShotEpisodes(toy_class_images(num_classes=12, per_class=20))
    for episode in source.episodes(ways=5, shots=3, queries=4, num_episodes=20, seed=1):
        support = identities(episode["support_x"].numpy())
        query = identities(episode["query_x"].numpy())
        assert not set(support) & set(query)
        assert len(set(support)) == 15 and len(set(query)) == 20
        # Each label is one class, the same in support and query; the classes differ.
        label_class = {}
        for (class_id, _), label in zip(
            support + query,
            np.concatenate([episode["support_y"].numpy(), episode["query_y"].numpy()]),
        ):
            assert label_class.setdefault(label, class_id) == class_id
        assert sorted(label_class) == list(range(5))
        assert len(set(label_class.values())) == 5


def test_labels_are_balanced_and_grouped(toy_class_images):
    episode = first(tfmeta.data.FewShotEpisodes(toy_class_images()).episodes(4, 2, 5, seed=0))
    np.testing.assert_array_equal(episode["support_y"], np.repeat(np.arange(4), 2))
    np.testing.assert_array_equal(episode["query_y"], np.repeat(np.arange(4), 5))


def test_labels_go_to_classes_in_random_order(toy_class_images, identities):
    source = tfmeta.data.FewShotEpisodes(toy_class_images(num_classes=12))
    ascending, classes_seen = 0, set()
    for episode in source.episodes(ways=5, shots=1, queries=1, num_episodes=50, seed=2):
        classes = [class_id for class_id, _ in identities(episode["support_x"].numpy())]
        ascending += classes == sorted(classes)
        classes_seen.update(classes)
    assert ascending < 10  # 1 in 120 episodes by chance.
    assert classes_seen == set(range(12))


def test_same_seed_gives_same_episodes_and_different_seeds_differ(toy_class_images):
    source = tfmeta.data.FewShotEpisodes(toy_class_images())
    a = [first(source.episodes(5, 1, 2, meta_batch_size=3, seed=7)) for _ in range(2)]
    tf.random.set_seed(123)  # The global seed does not matter.
    b = first(source.episodes(5, 1, 2, meta_batch_size=3, seed=7))
    c = first(source.episodes(5, 1, 2, meta_batch_size=3, seed=8))
    for key in EPISODE_KEYS:
        np.testing.assert_array_equal(a[0][key], a[1][key])
        np.testing.assert_array_equal(a[0][key], b[key])
    assert not np.array_equal(a[0]["support_x"], c["support_x"])


def test_fixed_and_infinite_episode_counts(toy_class_images):
    source = tfmeta.data.FewShotEpisodes(toy_class_images())
    fixed = source.episodes(5, 1, 1, meta_batch_size=4, num_episodes=12, seed=0)
    assert len(list(fixed)) == 3
    assert len(list(source.episodes(5, 1, 1, num_episodes=3, seed=0))) == 3
    infinite = source.episodes(5, 1, 1, seed=0)
    assert infinite.cardinality() == tf.data.INFINITE_CARDINALITY


def test_meta_batch_stacks_the_episodes_of_the_unbatched_stream(toy_class_images):
    source = tfmeta.data.FewShotEpisodes(toy_class_images())
    batch = first(source.episodes(5, 2, 2, meta_batch_size=3, seed=4))
    singles = list(source.episodes(5, 2, 2, num_episodes=3, seed=4).as_numpy_iterator())
    for key in EPISODE_KEYS:
        np.testing.assert_array_equal(batch[key], np.stack([s[key] for s in singles]))


def test_rotations_turn_whole_classes_by_quarter_turns():
    images = np.random.default_rng(0).integers(0, 256, [5, 6, 6, 1], dtype=np.uint8)
    data = tfmeta.data.ClassImages(images, [5], ["a"]).with_rotations()
    assert data.num_classes == 4
    assert data.class_names == ["a", "a@rot90", "a@rot180", "a@rot270"]
    turned = [tf.image.rot90(images.astype(np.float32) / 255, k).numpy() for k in range(4)]
    source = tfmeta.data.FewShotEpisodes(data)
    for episode in source.episodes(ways=4, shots=2, queries=3, num_episodes=5, seed=0):
        turns_by_label = []
        for label in range(4):
            group = np.concatenate(
                [
                    episode["support_x"][label * 2 : label * 2 + 2],
                    episode["query_x"][label * 3 : label * 3 + 3],
                ]
            )
            turns = {
                k
                for image in group
                for k in range(4)
                if any(np.array_equal(image, t) for t in turned[k])
            }
            assert len(turns) == 1  # All images of a class share one rotation.
            turns_by_label.append(turns.pop())
        assert sorted(turns_by_label) == [0, 1, 2, 3]


def test_ragged_classes_sample_only_their_own_images(toy_class_images, identities):
    counts = [3, 20, 4, 7, 3]
    source = tfmeta.data.FewShotEpisodes(toy_class_images(num_classes=5, per_class=counts))
    for episode in source.episodes(5, 2, 1, num_episodes=30, seed=0):
        for class_id, example in identities(
            np.concatenate([episode["support_x"], episode["query_x"]])
        ):
            assert example < counts[class_id]


def test_short_classes_raise_by_default_and_can_be_skipped(toy_class_images, identities):
    source = tfmeta.data.FewShotEpisodes(
        toy_class_images(num_classes=6, per_class=[2, 9, 9, 9, 1, 9]), "toy"
    )
    with pytest.raises(
        ValueError,
        match=r"at least shots \+ queries = 3 images\. Received: 2 of 6 classes "
        r"hold fewer \(e\.g\. 'class000' with 2\).*on_short_class='skip'",
    ):
        source.episodes(ways=3, shots=1, queries=2)
    skipped = source.episodes(
        ways=3, shots=1, queries=2, num_episodes=20, seed=0, on_short_class="skip"
    )
    seen = {c for e in skipped for c, _ in identities(e["support_x"].numpy())}
    assert seen == {1, 2, 3, 5}
    with pytest.raises(
        ValueError,
        match=r"Expected ways <= 4 classes in 'toy' with at least 3 images "
        r"\(2 classes hold fewer\)\. Received: ways=5",
    ):
        source.episodes(ways=5, shots=1, queries=2, on_short_class="skip")


def test_more_ways_than_classes_is_an_error(toy_class_images):
    source = tfmeta.data.FewShotEpisodes(toy_class_images(num_classes=12))
    with pytest.raises(ValueError, match=r"^Expected ways <= 12 classes\. Received: ways=20$"):
        source.episodes(ways=20, shots=1, queries=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ways=5, shots=0, queries=1), r"Expected shots >= 1\. Received: shots=0"),
        (dict(ways=0, shots=1, queries=1), r"Expected ways >= 1\. Received: ways=0"),
        (dict(ways=5, shots=1, queries=0), r"Expected queries >= 1\. Received: queries=0"),
        (
            dict(ways=5, shots=1.5, queries=1),
            r"Expected shots to be one integer >= 1\. Received: shots=1\.5 of type float$",
        ),
        (
            dict(ways=[3, 5], shots=1, queries=1),
            r"Expected ways to be one integer >= 1\. Received: ways=\[3, 5\] of type list: "
            r"every episode of a dataset has the same shape.*sample_from_datasets",
        ),
        (dict(ways=5, shots=1, queries=1, meta_batch_size=0), r"Received: meta_batch_size=0"),
        (
            dict(ways=5, shots=1, queries=1, meta_batch_size=4, num_episodes=10),
            r"num_episodes to be a multiple of meta_batch_size.*num_episodes=10, meta_batch_size=4",
        ),
        (
            dict(ways=5, shots=1, queries=1, on_short_class="pad"),
            r"`on_short_class` to be one of \['raise', 'skip'\]\. Received: on_short_class='pad'",
        ),
    ],
)
def test_bad_episode_arguments_raise_with_the_value_received(toy_class_images, kwargs, message):
    source = tfmeta.data.FewShotEpisodes(toy_class_images())
    with pytest.raises(ValueError, match=message):
        source.episodes(**kwargs)


def test_source_wraps_a_plain_tf_data_dataset():
    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    labels = np.arange(40) % 4
    source = tfmeta.data.FewShotEpisodes.from_dataset(
        tf.data.Dataset.from_tensor_slices((images, labels))
    )
    assert source.num_classes == 4 and source.image_shape == (4, 4, 1)
    episode = first(source.episodes(4, 2, 3, seed=0))
    assert episode["support_x"].shape == (8, 4, 4, 1)


def test_episodes_of_several_way_counts_mix_for_a_learner_that_takes_any(toy_class_images):
    """The path the `ways=[3, 5]` error names: one dataset per way count, sampled together."""
    source = tfmeta.data.FewShotEpisodes(toy_class_images(num_classes=12))
    mixed = tf.data.Dataset.sample_from_datasets(
        [source.episodes(ways, 1, 1, meta_batch_size=2, seed=ways) for ways in (3, 5)], seed=0
    )
    sizes = {batch["support_y"].shape[1] for batch in mixed.take(12)}
    assert sizes == {3, 5}
