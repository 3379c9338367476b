"""How images are turned into the fixed-size uint8 arrays episodes are cut from."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.argument_validation import check_choice
from tfmeta.data import pixels as pixels_lib

INPUT_CHANNELS = (1, 3, 4)  # grayscale, RGB, RGBA
RESIZE_METHODS = ("area", "bicubic", "bilinear", "lanczos3", "lanczos5", "mitchellcubic", "nearest")


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
    """Resizes, converts and optionally inverts one image, keeping uint8 pixels.

    Images are stored as uint8 (a quarter of the memory of float32, and
    exact for the {0, 255} Omniglot strokes); episodes convert them to float32
    in `[0, 1]` by dividing by 255.

    Args:
        image_size: `(height, width)` of the stored images, or an int for
            square images (28 for Omniglot, 84 for mini-ImageNet-style data).
        channels: 1 (grayscale) or 3 (RGB). Grayscale inputs are repeated to
            RGB, RGB inputs are converted with `tf.image.rgb_to_grayscale`;
            a 4th (alpha) input channel is dropped.
        invert: if True, store `255 - pixel`. Omniglot uses this so that
            strokes are 1 and paper 0 after scaling, as in Finn et al. (2017)
            and learn2learn.
        resize_method: a `tf.image.resize` method. The default `"lanczos3"`
            with antialiasing matches PIL's `LANCZOS` resampling, which the
            reference MAML code and learn2learn use for Omniglot.

    Example:

    >>> prep = tfmeta.data.ImagePreprocessing(image_size=28, channels=1, invert=True)
    >>> prep(tf.fill([105, 105, 3], tf.constant(255, tf.uint8))).shape
    TensorShape([28, 28, 1])
    """

    image_size: tuple[int, int] | int = 28
    channels: int = 1
    invert: bool = False
    resize_method: str = "lanczos3"

    def __post_init__(self):
        size = self.image_size
        if isinstance(size, int):
            size = (size, size)
        size = tuple(size)
        if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
            raise ValueError(
                "Expected image_size to be a positive int or a (height, width) pair "
                f"of positive ints. Received: image_size={self.image_size!r}"
            )
        object.__setattr__(self, "image_size", size)
        if self.channels not in (1, 3):
            raise ValueError(
                "Expected channels to be 1 (grayscale) or 3 (RGB). "
                f"Received: channels={self.channels!r}"
            )
        check_choice("resize_method", self.resize_method, RESIZE_METHODS)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The `(height, width, channels)` of preprocessed images."""
        return (*self.image_size, self.channels)

    def cache_key(self) -> str:
        """A string naming these settings, for cache file names."""
        height, width = self.image_size
        inverted = "-inv" if self.invert else ""
        return f"{height}x{width}x{self.channels}{inverted}-{self.resize_method}"

    def __call__(self, image: tf.Tensor) -> tf.Tensor:
        """Preprocesses one `[height, width, channels]` image.

        Args:
            image: pixels as `tfmeta.data.pixels` defines them (uint8 in
                `[0, 255]`, other integers in 0..255, floats in `[0, 1]`;
                not checked here, `ClassImages.from_dataset` checks them),
                with 1, 3 or 4 channels (2-D images are treated as grayscale).

        Returns:
            A uint8 tensor of shape `self.image_shape`.
        """
        image = tf.convert_to_tensor(image)
        if image.shape.rank == 2:
            image = image[..., tf.newaxis]
        if image.shape.rank != 3:
            raise ValueError(
                "Expected an image of shape [height, width, channels]. "
                f"Received: image.shape={image.shape}"
            )
        in_channels = image.shape[-1]
        if in_channels not in (1, 3, 4):
            raise ValueError(
                "Expected images with 1, 3 or 4 channels. " f"Received: image.shape={image.shape}"
            )
        image = pixels_lib.to_unit_float(image)
        if in_channels == 4:
            image = image[..., :3]
            in_channels = 3
        if self.channels == 1 and in_channels == 3:
            image = tf.image.rgb_to_grayscale(image)
        elif self.channels == 3 and in_channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        image = tf.image.resize(image, self.image_size, method=self.resize_method, antialias=True)
        if self.invert:
            image = 1.0 - image
        image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
        return tf.ensure_shape(image, self.image_shape)

    def decode(self, encoded: tf.Tensor) -> tf.Tensor:
        """Decodes one PNG, JPEG, GIF or BMP image (a scalar string) and preprocesses it.

        Decoding goes straight to `channels`, as `tfmeta.data` reads image
        files for training, so an exported model that decodes a client's
        bytes with this sees exactly the training pixels.
        """
        image = tf.io.decode_image(encoded, channels=self.channels, expand_animations=False)
        image.set_shape([None, None, self.channels])
        return self(image)

    def from_pixels(self, pixels: tf.Tensor) -> tf.Tensor:
        """Preprocesses one `[height, width, channels]` uint8 image of any size and channel count.

        Unlike `__call__`, the channel count (1, 3 or 4) may be unknown until
        the graph runs, as in a serving signature that takes raw pixels.
        """
        channels = tf.shape(pixels)[-1]
        check = tf.debugging.assert_equal(
            tf.reduce_any(tf.equal(channels, INPUT_CHANNELS)), True,
            message=f"Expected images with {', '.join(map(str, INPUT_CHANNELS))} channels. "
                    "Received another channel count",
        )
        with tf.control_dependencies([check]):
            pixels = tf.identity(pixels)
        branches = [
            lambda count=count: self(tf.ensure_shape(pixels, [None, None, count]))
            for count in INPUT_CHANNELS
        ]
        index = tf.argmax(tf.cast(tf.equal(channels, INPUT_CHANNELS), tf.int32))
        return tf.ensure_shape(tf.switch_case(tf.cast(index, tf.int32), branches),
                               self.image_shape)

    def to_json(self) -> dict:
        """The settings, for export metadata (how a client's images become model inputs)."""
        return {
            "decode": "tf.io.decode_image, straight to `channels`",
            "channels": self.channels,
            "image_size": list(self.image_size),
            "resize_method": self.resize_method,
            "antialias": True,
            "invert": self.invert,
            "scale": "uint8 / 255 -> float32 in [0, 1]",
        }


def to_model_inputs(images: tf.Tensor) -> tf.Tensor:
    """Preprocessed uint8 images as the float32 model inputs in `[0, 1]` that episodes carry."""
    return tf.cast(images, tf.float32) / 255.0
