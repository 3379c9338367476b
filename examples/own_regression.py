"""Meta-learning a regression task family of your own: MAML on random quadratics.

A task family is a `tfmeta.data.TaskFamily` with one method, `sample(seed, support_shots,
query_shots)`, returning a task's support and query points from a stateless seed. MAML
meta-learns an MLP that fits a new quadratic from 10 points in a few gradient steps;
evaluation reports the query MSE (regression: no accuracy) before and after adaptation.

    python examples/own_regression.py --iterations=5000
"""

import keras
import tensorflow as tf
from absl import app, flags

import tfmeta

flags.DEFINE_integer("iterations", 2000, "Meta-updates.")
flags.DEFINE_integer("meta_batch_size", 25, "Tasks per meta-update.")
flags.DEFINE_integer("shots", 10, "Support points per task.")
flags.DEFINE_integer("test_episodes", 600, "Held-out tasks to evaluate.")
FLAGS = flags.FLAGS


class QuadraticTasks(tfmeta.data.TaskFamily):
    """y = a x^2 + b x + c with a, b, c ~ U[-1, 1] per task, x ~ U[-2, 2]."""

    def sample(self, seed, support_shots, query_shots):
        task_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        a, b, c = tf.unstack(tf.random.stateless_uniform([3], task_seed, -1.0, 1.0))
        x = tf.random.stateless_uniform([support_shots + query_shots, 1], x_seed, -2.0, 2.0)
        return self.split(x, a * x**2 + b * x + c, support_shots)


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    tasks = QuadraticTasks()
    net = tfmeta.models.mlp()  # 1 -> 40 -> 40 -> 1, ReLU
    maml = tfmeta.MAML(net, inner_learning_rate=0.01, inner_steps=1, eval_inner_steps=5)
    maml.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    maml.fit(tasks.episodes(FLAGS.shots, FLAGS.shots, FLAGS.meta_batch_size, seed=0),
             steps_per_epoch=FLAGS.iterations, verbose=2)

    held_out = tasks.episodes(FLAGS.shots, 50, meta_batch_size=25,
                              num_episodes=FLAGS.test_episodes, seed=1)
    after = tfmeta.evaluation.evaluate_episodes(maml, held_out)  # {"loss", "loss_ci95", ...}
    before = maml.evaluate(held_out, verbose=0, return_dict=True)["pre_adaptation_loss"]
    print(f"held-out query MSE: {before:.3f} before adaptation, "
          f"{after['loss']:.3f} +/- {after['loss_ci95']:.3f} after "
          f"{maml.eval_inner_steps} steps ({after['episodes']} tasks)")


if __name__ == "__main__":
    app.run(main)
