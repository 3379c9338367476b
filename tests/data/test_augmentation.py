"""Per-image augmentation of training episodes: off by default, seeded, shapes and padding kept."""

import numpy as np
import pytest

import tfmeta.data


def _episodes(toy_class_images, meta_batch_size=2):
    source = tfmeta.data.FewShotEpisodes(toy_class_images(12, 10, size=6))
    return source.episodes(3, 2, 2, meta_batch_size=meta_batch_size, num_episodes=4, seed=0)


def test_no_transform_leaves_the_dataset_as_it_is(toy_class_images):
    episodes = _episodes(toy_class_images)
    assert tfmeta.data.augment_episodes(episodes, tfmeta.data.EpisodeAugmentation(), 0) is episodes


def test_flips_are_per_image_and_seeded(toy_class_images):
    episodes = _episodes(toy_class_images)
    flip = tfmeta.data.EpisodeAugmentation(flip=True)
    one = list(tfmeta.data.augment_episodes(episodes, flip, seed=1).as_numpy_iterator())
    two = list(tfmeta.data.augment_episodes(episodes, flip, seed=1).as_numpy_iterator())
    plain = list(episodes.as_numpy_iterator())
    flipped = []
    for a, b, p in zip(one, two, plain):
        np.testing.assert_array_equal(a["support_x"], b["support_x"])
        x, original = a["support_x"].reshape(-1, 6, 6, 1), p["support_x"].reshape(-1, 6, 6, 1)
        for image, source in zip(x, original):
            is_flipped = np.array_equal(image, source[:, ::-1])
            assert is_flipped or np.array_equal(image, source)
            flipped.append(is_flipped)
        np.testing.assert_array_equal(a["support_y"], p["support_y"])
    assert 0.2 < np.mean(flipped) < 0.8  # 24 images: each flipped with probability 1/2


def test_crops_shift_jitter_stays_in_range_and_padding_stays_zero(toy_class_images):
    source = tfmeta.data.FewShotEpisodes(toy_class_images(12, 10, size=6))
    config = tfmeta.data.VariableEpisodeConfig(min_ways=3, max_ways=4, max_support_size=12,
                                               max_support_per_class=3, max_query_per_class=2)
    padded = tfmeta.data.variable_episodes(source, config, meta_batch_size=2, num_episodes=2,
                                           seed=0)
    augmentation = tfmeta.data.EpisodeAugmentation(crop_padding=2, brightness=0.3, contrast=0.3)
    for batch in tfmeta.data.augment_episodes(padded, augmentation, seed=0):
        x, mask = batch["support_x"].numpy(), batch["support_mask"].numpy()
        assert x.shape == (2, 12, 6, 6, 1) and x.min() >= 0 and x.max() <= 1
        assert not x[~mask].any()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="crop_padding"):
        tfmeta.data.EpisodeAugmentation(crop_padding=-1)
    with pytest.raises(ValueError, match="brightness in \\[0, 1\\]"):
        tfmeta.data.EpisodeAugmentation(brightness=2.0)


def test_crops_are_windows_of_the_mirror_padded_image(toy_class_images):
    episodes = _episodes(toy_class_images)
    crop = tfmeta.data.EpisodeAugmentation(crop_padding=2)
    shifted = []
    for a, p in zip(tfmeta.data.augment_episodes(episodes, crop, seed=3), episodes):
        for image, source in zip(a["query_x"].numpy().reshape(-1, 6, 6),
                                 p["query_x"].numpy().reshape(-1, 6, 6)):
            padded = np.pad(source, 2, mode="reflect")
            windows = [(r, c) for r in range(5) for c in range(5)
                       if np.array_equal(padded[r:r + 6, c:c + 6], image)]
            assert windows, "not a window of the padded image"
            shifted.append((2, 2) not in windows)
    assert np.mean(shifted) > 0.5
