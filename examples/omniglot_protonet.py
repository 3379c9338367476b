"""Prototypical Networks on Omniglot: learn an embedding where classes cluster.

Meta-trains with more classes per episode than at test time (Snell et al.
2017 use 60), then classifies queries of unseen characters by the nearest
class mean of a few support images. The defaults finish in a few minutes on a
laptop CPU; the paper's setting (5-way 1-shot, 98.8%):

    python examples/omniglot_protonet.py --data=path/to/omniglot.tar.gz \\
        --iterations=20000 --filters=64 --test_episodes=600
"""

import keras
from absl import app, flags

import tfmeta

flags.DEFINE_string("data", None, "Omniglot ImageFolder folder or .tar.gz (default: TFDS).")
flags.DEFINE_integer("train_ways", 60, "Classes per meta-training episode.")
flags.DEFINE_integer("ways", 5, "Classes per test episode.")
flags.DEFINE_integer("shots", 1, "Support images per class.")
flags.DEFINE_integer("iterations", 300, "Meta-training episodes.")
flags.DEFINE_integer("filters", 32, "Conv-4 filters (64 in the paper).")
flags.DEFINE_integer("test_episodes", 100, "Held-out episodes to evaluate (600 in the paper).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    sources = tfmeta.data.omniglot(FLAGS.data)  # 1100 / 100 / 423 characters, with rotations

    embedding = tfmeta.models.conv4((28, 28, 1), num_classes=None, filters=FLAGS.filters)
    protonet = tfmeta.ProtoNet(embedding)  # the number of classes comes from each episode
    learning_rate = keras.optimizers.schedules.ExponentialDecay(1e-3, 2000, 0.5, staircase=True)
    protonet.compile(optimizer=keras.optimizers.Adam(learning_rate),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])

    train = sources["train"].episodes(FLAGS.train_ways, FLAGS.shots, 5, meta_batch_size=1, seed=0)
    protonet.fit(train, steps_per_epoch=FLAGS.iterations, epochs=1)

    test = sources["test"].episodes(FLAGS.ways, FLAGS.shots, 15, meta_batch_size=20,
                                    num_episodes=-(-FLAGS.test_episodes // 20) * 20, seed=1)
    result = tfmeta.evaluation.evaluate_episodes(protonet, test, num_episodes=FLAGS.test_episodes)
    print(f"{FLAGS.ways}-way {FLAGS.shots}-shot accuracy on unseen characters: "
          f"{100 * result['accuracy']:.1f}% +/- {100 * result['ci95']:.1f}")
    protonet.save("omniglot_protonet.keras")


if __name__ == "__main__":
    app.run(main)
