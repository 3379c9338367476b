"""Few-shot classification of your own images: a folder of class folders, or numpy arrays.

    python examples/own_images.py --images=path/to/root  # root/train/<class>/*.png, root/test/...
    python examples/own_images.py --npz=data.npz         # arrays images [N, H, W(, C)], labels [N]

A folder follows `tfds.ImageFolder`'s layout: the classes under `train/` meta-train, the
classes under `test/` (others, never seen) are held out. From arrays, the classes are split
into meta-training and held-out ones. Images are resized to `--image_size`; uint8 pixels
are scaled by 255, float pixels must lie in [0, 1] (pass --scale=0.00392156862745098 for
floats in 0..255). Prototypical Networks meta-train on N-way K-shot episodes of the
training classes and are evaluated on episodes of the held-out classes.
"""

import keras
import numpy as np
from absl import app, flags

import tfmeta

flags.DEFINE_string("images", None, "An ImageFolder root with train/ and test/ class folders.")
flags.DEFINE_string("npz", None, "A .npz file with `images` and `labels` arrays.")
flags.DEFINE_float("scale", None, "Factor for float pixels (1/255 for floats in 0..255).")
flags.DEFINE_integer("test_classes", 20, "--npz: classes held out for evaluation.")
flags.DEFINE_integer("image_size", 28, "Side of the (square) resized images.")
flags.DEFINE_integer("channels", 1, "1 (grayscale) or 3 (RGB).")
flags.DEFINE_integer("ways", 5, "Classes per episode.")
flags.DEFINE_integer("shots", 1, "Support images per class.")
flags.DEFINE_integer("queries", 5, "Query images per class.")
flags.DEFINE_integer("iterations", 500, "Meta-training episodes.")
flags.DEFINE_integer("filters", 32, "Conv-4 filters.")
flags.DEFINE_integer("test_episodes", 600, "Held-out episodes to evaluate.")
FLAGS = flags.FLAGS


def sources(prep: tfmeta.data.ImagePreprocessing) -> tuple:
    """Meta-training and held-out episode sources, from the folder or the arrays."""
    if FLAGS.images:
        train = tfmeta.data.FewShotEpisodes.from_image_folder(FLAGS.images, "train",
                                                              preprocessing=prep)
        test = tfmeta.data.FewShotEpisodes.from_image_folder(FLAGS.images, "test",
                                                             preprocessing=prep)
        return train, test
    with np.load(FLAGS.npz) as arrays:
        classes = tfmeta.data.ClassImages.from_arrays(arrays["images"], arrays["labels"],
                                                      preprocessing=prep, scale=FLAGS.scale)
    parts = tfmeta.data.split_classes(classes, {"train": None, "test": FLAGS.test_classes}, seed=0)
    return tfmeta.data.FewShotEpisodes(parts["train"]), tfmeta.data.FewShotEpisodes(parts["test"])


def main(argv):
    del argv
    if bool(FLAGS.images) == bool(FLAGS.npz):
        raise app.UsageError("Pass one of --images=DIR or --npz=FILE.")
    keras.utils.set_random_seed(0)
    prep = tfmeta.data.ImagePreprocessing(FLAGS.image_size, channels=FLAGS.channels)
    train, test = sources(prep)
    print(f"meta-training on {train.num_classes} classes, evaluating on {test.num_classes} others")

    embedding = tfmeta.models.conv4(prep.image_shape, num_classes=None, filters=FLAGS.filters)
    protonet = tfmeta.ProtoNet(embedding, ways=FLAGS.ways)
    protonet.compile(optimizer=keras.optimizers.Adam(1e-3),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
    protonet.fit(train.episodes(FLAGS.ways, FLAGS.shots, FLAGS.queries, meta_batch_size=1, seed=0),
                 steps_per_epoch=FLAGS.iterations, verbose=2)

    held_out = test.episodes(FLAGS.ways, FLAGS.shots, FLAGS.queries,
                             num_episodes=FLAGS.test_episodes, seed=1).batch(20)
    result = tfmeta.evaluation.evaluate_episodes(protonet, held_out)  # every episode of held_out
    print(f"{FLAGS.ways}-way {FLAGS.shots}-shot accuracy on unseen classes: "
          f"{100 * result['accuracy']:.1f}% +/- {100 * result['ci95']:.1f} "
          f"({result['episodes']} episodes)")


if __name__ == "__main__":
    app.run(main)
