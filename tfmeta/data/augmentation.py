"""Data augmentation of training episodes: random crops, flips and colour jitter, off by default.

Each image of a task (support and query) gets its own random transform,
drawn from stateless seeds keyed by `(seed, episode index)`, so augmented
episodes are as reproducible as the episodes themselves. Only training
episodes should be augmented; evaluation episodes stay as they are.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.data.episode import QUERY_MASK, QUERY_X, SUPPORT_MASK, SUPPORT_X


@dataclasses.dataclass(frozen=True)
class EpisodeAugmentation:
    """Which random transforms to apply to every image of an episode (all off by default).

    Args:
        crop_padding: pad each side by this many pixels (mirror padding), then
            crop a random window of the original size (4 at 32x32, 8 at 84x84
            is common); 0 turns it off.
        flip: flip each image left-right with probability 1/2.
        brightness: add a delta drawn from `[-brightness, brightness]`.
        contrast: scale the deviation from the image mean by a factor drawn
            from `[1 - contrast, 1 + contrast]`.
        saturation: scale the deviation from the grayscale image by a factor
            from `[1 - saturation, 1 + saturation]` (RGB images only).

    Pixels stay in `[0, 1]` (clipped after jitter); the padding of padded
    episodes (`tfmeta.data.variable_episodes`) stays zero.
    """

    crop_padding: int = 0
    flip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0

    def __post_init__(self):
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or (
            self.crop_padding < 0
        ):
            raise ValueError(
                f"Expected crop_padding to be an integer >= 0. Received: {self.crop_padding!r}"
            )
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not is_number or not 0 <= value <= 1:
                raise ValueError(f"Expected {name} in [0, 1]. Received: {name}={value!r}")

    @property
    def enabled(self) -> bool:
        """Whether any transform is on."""
        return bool(self.crop_padding or self.flip or self.brightness or self.contrast
                    or self.saturation)

    def images(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Augments a batch `[N, H, W, C]` of float images in `[0, 1]`, each image on its own.

        Args:
            images: the images.
            seed: a stateless seed, shape `[2]`.
        """
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, num=5))
        count = tf.shape(images)[0]
        height, width, channels = images.shape[1:]
        if self.crop_padding:
            p = self.crop_padding
            padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
            offsets = tf.random.stateless_uniform([count, 2], seeds[0], 0, 2 * p + 1, tf.int32)
            rows = offsets[:, :1] + tf.range(height)[tf.newaxis]
            cols = offsets[:, 1:] + tf.range(width)[tf.newaxis]
            images = tf.gather(padded, rows, axis=1, batch_dims=1)
            images = tf.gather(images, cols, axis=2, batch_dims=1)
        if self.flip:
            flip = tf.random.stateless_uniform([count, 1, 1, 1], seeds[1]) < 0.5
            images = tf.where(flip, tf.reverse(images, axis=[2]), images)
        if self.brightness:
            images += tf.random.stateless_uniform(
                [count, 1, 1, 1], seeds[2], -self.brightness, self.brightness
            )
        if self.contrast:
            factor = tf.random.stateless_uniform(
                [count, 1, 1, 1], seeds[3], 1 - self.contrast, 1 + self.contrast
            )
            mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
            images = mean + (images - mean) * factor
        if self.saturation and channels == 3:
            factor = tf.random.stateless_uniform(
                [count, 1, 1, 1], seeds[4], 1 - self.saturation, 1 + self.saturation
            )
            gray = tf.image.rgb_to_grayscale(images)
            images = gray + (images - gray) * factor
        return tf.clip_by_value(images, 0.0, 1.0)

    def episode(self, episode: dict[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """Augments the support and query images of an episode or meta-batch of episodes."""
        episode = dict(episode)
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
        for key, mask_key, key_seed in ((SUPPORT_X, SUPPORT_MASK, seeds[0]),
                                        (QUERY_X, QUERY_MASK, seeds[1])):
            x = episode[key]
            flat = tf.reshape(x, [-1, *x.shape[-3:]])
            augmented = tf.reshape(self.images(flat, key_seed), tf.shape(x))
            if mask_key in episode:
                mask = tf.cast(episode[mask_key], augmented.dtype)
                augmented *= mask[..., tf.newaxis, tf.newaxis, tf.newaxis]
            episode[key] = tf.ensure_shape(augmented, x.shape)
        return episode


def augment_episodes(
    episodes: tf.data.Dataset, augmentation: EpisodeAugmentation, seed: int
) -> tf.data.Dataset:
    """`episodes` with `augmentation` applied; unchanged if no transform is on.

    Element `i` is augmented with seeds keyed by `(seed, i)`: the same seed
    gives the same augmented episodes. Works on episodes and on meta-batches.

    Example:

    >>> augmentation = tfmeta.data.EpisodeAugmentation(crop_padding=8, flip=True, brightness=0.2)
    >>> train = tfmeta.data.augment_episodes(
    ...     sources["train"].episodes(5, 1, 15, meta_batch_size=4, seed=0), augmentation, seed=0)
    """
    if not isinstance(augmentation, EpisodeAugmentation):
        raise ValueError(
            "Expected a tfmeta.data.EpisodeAugmentation. Received: "
            f"{type(augmentation).__name__}"
        )
    if not augmentation.enabled:
        return episodes
    seed_t = tf.constant(int(seed), tf.int64)
    return episodes.enumerate().map(
        lambda index, episode: augmentation.episode(episode, tf.stack([seed_t, index])),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
