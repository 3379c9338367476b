"""Meta-Dataset episodes: the sampler's rules, source proportions, padding, determinism."""

import math

import numpy as np
import pytest
import tensorflow as tf

import tfmeta.data

CONFIG = tfmeta.data.VariableEpisodeConfig(
    min_ways=3, max_ways=8, max_support_size=40, max_support_per_class=6, max_query_per_class=4
)


def _source(toy_class_images, per_class, name="toy", num_classes=12):
    return tfmeta.data.FewShotEpisodes(toy_class_images(num_classes, per_class), name=name)


def _episodes(sources, n, config=CONFIG, **kwargs):
    data = tfmeta.data.variable_episodes(sources, config, num_episodes=n, seed=3, **kwargs)
    return list(data.as_numpy_iterator())


def test_ways_shots_and_queries_obey_the_sampler_rules(toy_class_images, identities):
    counts = [4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20]  # ragged classes
    source = _source(toy_class_images, counts)
    seen_ways = set()
    for episode in _episodes(source, 200):
        ways = int(episode["ways"])
        seen_ways.add(ways)
        support_y = episode["support_y"][episode["support_mask"]]
        query_y = episode["query_y"][episode["query_mask"]]
        shots = np.bincount(support_y, minlength=ways)
        queries = np.bincount(query_y, minlength=ways)
        assert 3 <= ways <= 8 and len(shots) == ways
        # Masks cover a prefix; padding is zero images labelled 0.
        assert episode["support_mask"][: len(support_y)].all()
        assert not episode["support_x"][~episode["support_mask"]].any()
        support = identities(episode["support_x"][episode["support_mask"]])
        query = identities(episode["query_x"][episode["query_mask"]])
        class_of = {}
        for (class_id, _), label in zip(support + query, list(support_y) + list(query_y)):
            assert class_of.setdefault(label, class_id) == class_id  # one class per label
        sizes = np.array([counts[class_of[n]] for n in range(ways)])
        q = min(CONFIG.max_query_per_class, int((sizes // 2).min()))
        assert (queries == q).all()
        assert (shots >= 1).all() and (shots <= sizes - q).all()
        assert shots.sum() <= CONFIG.max_support_size
        budget = sum(math.ceil(min(CONFIG.max_support_per_class, s - q)) for s in sizes)
        assert shots.sum() <= budget
        assert len(set(support) | set(query)) == len(support) + len(query)  # no image twice
    assert seen_ways == set(range(3, 9))


def test_support_sets_are_class_imbalanced_over_many_episodes(toy_class_images):
    source = _source(toy_class_images, 40)
    spreads = []
    for episode in _episodes(source, 100):
        shots = np.bincount(episode["support_y"][episode["support_mask"]])
        spreads.append(shots.max() - shots.min())
    assert np.mean(np.asarray(spreads) > 0) > 0.5


def test_mixed_sources_follow_their_weights(toy_class_images):
    """Each episode's source is drawn with probability 0.2 / 0.8: over 1000 episodes the
    share of the second lies within 4 standard deviations (0.8 +- 0.051)."""
    first, second = _source(toy_class_images, 10, "a"), _source(toy_class_images, 10, "b")
    sources = [e["source"] for e in _episodes([first, second], 1000, weights=[1, 4])]
    share = np.mean(np.asarray(sources) == 1)
    assert abs(share - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 1000), share


def test_mixed_episodes_concatenate_and_depend_only_on_seed_and_index(toy_class_images):
    """Training streams are concatenated blocks: TF 2.21 cannot iterate a concatenation of
    `choose_from_datasets` datasets, which the sampler therefore does not use."""
    sources = [_source(toy_class_images, 10, "a"), _source(toy_class_images, 10, "b")]
    blocks = [tfmeta.data.variable_episodes(sources, CONFIG, num_episodes=3, seed=seed)
              for seed in (1, 2)]
    episodes = list(blocks[0].concatenate(blocks[1]).as_numpy_iterator())
    assert len(episodes) == 6
    longer = _episodes(sources, 6)
    for a, b in zip(_episodes(sources, 3), longer):  # episode i: a function of (seed, i)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_episodes_are_deterministic_and_batched_to_one_shape(toy_class_images):
    source = _source(toy_class_images, 10)
    one = _episodes(source, 4)
    two = _episodes(source, 4)
    for a, b in zip(one, two):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    batched = tfmeta.data.variable_episodes(source, CONFIG, meta_batch_size=2, seed=0)
    spec = batched.element_spec
    assert spec["support_x"].shape == (2, 40, 6, 6, 1)
    assert spec["query_x"].shape == (2, 32, 6, 6, 1)
    assert spec["support_mask"].dtype == tf.bool


def test_bad_configs_and_sources_are_refused(toy_class_images):
    with pytest.raises(ValueError, match="2 <= min_ways <= max_ways"):
        tfmeta.data.VariableEpisodeConfig(min_ways=6, max_ways=5)
    with pytest.raises(ValueError, match="max_support_size >= max_ways"):
        tfmeta.data.VariableEpisodeConfig(max_ways=50, max_support_size=20)
    small = _source(toy_class_images, 10, num_classes=2)
    with pytest.raises(ValueError, match="at least min_ways=3 classes"):
        tfmeta.data.variable_episodes(small, CONFIG)
    other = tfmeta.data.FewShotEpisodes(
        tfmeta.data.ClassImages(np.zeros([40, 5, 5, 1], np.uint8), [10] * 4, list("abcd"))
    )
    with pytest.raises(ValueError, match="one image shape"):
        tfmeta.data.variable_episodes([_source(toy_class_images, 10), other], CONFIG)
    with pytest.raises(ValueError, match="one non-negative weight per source"):
        tfmeta.data.variable_episodes([_source(toy_class_images, 10)] * 2, CONFIG, weights=[1])
