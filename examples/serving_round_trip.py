"""Serving round trip: meta-train on your images, export for TF Serving, adapt from a request.

    python examples/serving_round_trip.py --images=path/to/root --export_dir=models/my_images

Meta-trains Prototypical Networks on the classes of `<root>/train/` (ImageFolder layout),
exports a SavedModel in TF Serving's versioned layout with the image preprocessing in the
graph, loads it back as a server would, and sends it one task of `<root>/test/`: a few
labelled support images and the query images, as encoded PNG bytes. The predictions must
equal the learner's own. It also writes `request.json`, the REST body for
`POST http://localhost:8501/v1/models/<name>:predict` (columnar "inputs": the support set and
the queries differ in size).
"""

import base64
import json
import os

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import tfmeta
import tfmeta.exporters

flags.DEFINE_string("images", None, "An ImageFolder root with train/ and test/ class folders.")
flags.DEFINE_string("export_dir", "models/my_images", "The TF Serving base directory.")
flags.DEFINE_integer("image_size", 28, "Side of the (square) resized images.")
flags.DEFINE_integer("ways", 5, "Classes per task.")
flags.DEFINE_integer("shots", 1, "Support images per class.")
flags.DEFINE_integer("iterations", 300, "Meta-training episodes.")
flags.DEFINE_integer("filters", 32, "Conv-4 filters.")
flags.mark_flag_as_required("images")
FLAGS = flags.FLAGS


def png(image: np.ndarray) -> bytes:
    """One uint8 image as PNG bytes, as a client would send it."""
    return tf.io.encode_png(image).numpy()


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    prep = tfmeta.data.ImagePreprocessing(FLAGS.image_size, channels=1)
    train = tfmeta.data.FewShotEpisodes.from_image_folder(FLAGS.images, "train", preprocessing=prep)
    test = tfmeta.data.FewShotEpisodes.from_image_folder(FLAGS.images, "test", preprocessing=prep)

    protonet = tfmeta.ProtoNet(tfmeta.models.conv4(prep.image_shape, None, filters=FLAGS.filters),
                               ways=FLAGS.ways)
    protonet.compile(optimizer=keras.optimizers.Adam(1e-3),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    protonet.fit(train.episodes(FLAGS.ways, FLAGS.shots, 5, meta_batch_size=1, seed=0),
                 steps_per_epoch=FLAGS.iterations, verbose=2)

    version_dir = tfmeta.exporters.export_saved_model(
        protonet, FLAGS.export_dir, ways=FLAGS.ways, shots=FLAGS.shots, preprocessing=prep)
    print(f"exported {version_dir}")

    # A task of unseen classes, as the client holds it: uint8 images and labels 0..ways-1.
    task = next(iter(test.episodes(FLAGS.ways, FLAGS.shots, 3, seed=1)))
    support = (task["support_x"].numpy() * 255).round().astype(np.uint8)
    queries = (task["query_x"].numpy() * 255).round().astype(np.uint8)
    labels = task["support_y"].numpy()

    served = tf.saved_model.load(version_dir)  # what TF Serving loads
    response = served.signatures["serving_default"](
        support_images=tf.constant([png(image) for image in support]),
        support_y=tf.constant(labels),
        query_images=tf.constant([png(image) for image in queries]),
    )
    expected = protonet.predict_on_batch({key: value[tf.newaxis] for key, value in task.items()})
    np.testing.assert_allclose(response["outputs"].numpy(), expected[0], rtol=1e-4, atol=1e-4)
    accuracy = np.mean(response["classes"].numpy() == task["query_y"].numpy())
    print(f"served predictions equal the learner's; query accuracy {100 * accuracy:.0f}%")

    request = {"inputs": {
        "support_images": [{"b64": base64.b64encode(png(image)).decode()} for image in support],
        "support_y": labels.tolist(),
        "query_images": [{"b64": base64.b64encode(png(image)).decode()} for image in queries],
    }}
    with open("request.json", "w") as handle:
        json.dump(request, handle)
    name = os.path.basename(os.path.normpath(FLAGS.export_dir))
    print(f"curl -d @request.json http://localhost:8501/v1/models/{name}:predict")


if __name__ == "__main__":
    app.run(main)
