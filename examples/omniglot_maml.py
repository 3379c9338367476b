"""MAML on Omniglot: meta-train a Conv-4, then adapt it to unseen characters.

The defaults finish in a few minutes on a laptop CPU (first-order MAML, 300
meta-updates, 32 filters, 100 test episodes). The full protocol of Finn et
al. 2017 (5-way 1-shot, 98.7%):

    python examples/omniglot_maml.py --data=path/to/omniglot.tar.gz \\
        --iterations=60000 --meta_batch_size=32 --filters=64 --queries=15 \\
        --second_order --test_episodes=600
"""

import keras
from absl import app, flags

import tfmeta

flags.DEFINE_string("data", None, "Omniglot ImageFolder folder or .tar.gz (default: TFDS).")
flags.DEFINE_integer("ways", 5, "Classes per episode.")
flags.DEFINE_integer("shots", 1, "Support images per class.")
flags.DEFINE_integer("queries", 5, "Query images per class in meta-training.")
flags.DEFINE_integer("iterations", 300, "Meta-updates.")
flags.DEFINE_integer("meta_batch_size", 8, "Tasks per meta-update.")
flags.DEFINE_integer("filters", 32, "Conv-4 filters (64 in the paper).")
flags.DEFINE_bool("second_order", False, "Differentiate through the inner loop (full MAML).")
flags.DEFINE_integer("test_episodes", 100, "Held-out episodes to evaluate (600 in the paper).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    sources = tfmeta.data.omniglot(FLAGS.data)  # 1100 / 100 / 423 characters, with rotations

    net = tfmeta.models.conv4((28, 28, 1), num_classes=FLAGS.ways, filters=FLAGS.filters)
    maml = tfmeta.MAML(net, inner_learning_rate=0.4, inner_steps=1, eval_inner_steps=3,
                       first_order=not FLAGS.second_order)
    maml.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])

    train = sources["train"].episodes(FLAGS.ways, FLAGS.shots, FLAGS.queries,
                                      meta_batch_size=FLAGS.meta_batch_size, seed=0)
    maml.fit(train, steps_per_epoch=FLAGS.iterations, epochs=1)

    test = sources["test"].episodes(FLAGS.ways, FLAGS.shots, 15, meta_batch_size=20,
                                    num_episodes=-(-FLAGS.test_episodes // 20) * 20, seed=1)
    result = tfmeta.evaluation.evaluate_episodes(maml, test, num_episodes=FLAGS.test_episodes)
    print(f"{FLAGS.ways}-way {FLAGS.shots}-shot accuracy on unseen characters: "
          f"{100 * result['accuracy']:.1f}% +/- {100 * result['ci95']:.1f}")
    maml.save("omniglot_maml.keras")


if __name__ == "__main__":
    app.run(main)
