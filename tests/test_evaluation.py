"""`tfmeta.evaluation`: regression told from classification, any number of tasks, clear misuse."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import evaluation


class LineTasks(tfmeta.data.TaskFamily):
    def sample(self, seed, support_shots, query_shots):
        task_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        slope = tf.random.stateless_uniform([], task_seed, -3, 3)
        x = tf.random.stateless_uniform([support_shots + query_shots, 1], x_seed, -5, 5)
        return self.split(x, slope * x, support_shots)


def regression_maml():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(8, activation="relu"),
                            keras.layers.Dense(1)])
    maml = tfmeta.MAML(net, inner_learning_rate=0.01)
    maml.compile(optimizer="adam", loss="mse")
    return maml


def classification_maml(ways=3):
    keras.utils.set_random_seed(0)
    maml = tfmeta.MAML(keras.Sequential([keras.Input((4,)), keras.layers.Dense(ways)]))
    maml.compile(optimizer="adam",
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return maml


def image_episodes(ways=3, **kwargs):
    rng = np.random.default_rng(0)
    source = tfmeta.data.FewShotEpisodes.from_arrays(
        rng.integers(0, 256, [30, 2, 2, 1], np.uint8), np.arange(30) % 6
    )

    def flat(batch):
        return {**batch, "support_x": tf.reshape(batch["support_x"], [2, ways, 4]),
                "query_x": tf.reshape(batch["query_x"], [2, ways * 2, 4])}

    return source.episodes(ways, 1, 2, meta_batch_size=2, seed=0, **kwargs).map(flat)


def test_regression_reports_the_loss_only_over_every_task_of_a_finite_dataset():
    maml = regression_maml()
    episodes = LineTasks().episodes(5, 10, meta_batch_size=4, num_episodes=12, seed=1)
    result = evaluation.evaluate_episodes(maml, episodes)
    assert set(result) == {"loss", "loss_ci95", "episodes"} and result["episodes"] == 12
    per_task = evaluation.per_task_values(maml, episodes)
    assert result["loss"] == pytest.approx(per_task.mean())
    assert result["loss_ci95"] == pytest.approx(1.96 * per_task.std() / np.sqrt(12))


def test_classification_reports_accuracy_and_any_number_of_tasks():
    maml = classification_maml()
    result = evaluation.evaluate_episodes(maml, image_episodes(num_episodes=8), num_episodes=5)
    assert set(result) == {"accuracy", "ci95", "loss", "loss_ci95", "episodes"}
    assert result["episodes"] == 5 and 0.0 <= result["accuracy"] <= 1.0
    scores = evaluation.task_scores(maml, image_episodes(num_episodes=8))
    assert scores["accuracy"].shape == (8,) and scores["loss"].shape == (8,)


def test_misuse_is_named():
    maml = regression_maml()
    infinite = LineTasks().episodes(5, 10, meta_batch_size=4, seed=1)
    with pytest.raises(ValueError, match=r"Expected a finite dataset of episodes, or num_episodes"):
        evaluation.evaluate_episodes(maml, infinite)
    assert evaluation.evaluate_episodes(maml, infinite, num_episodes=6)["episodes"] == 6
    with pytest.raises(ValueError, match=r"at least num_episodes=20 tasks.*Received: 8"):
        evaluation.evaluate_episodes(maml, infinite.take(2), num_episodes=20)
    with pytest.raises(ValueError, match=r"integer >= 1 or None\. Received: num_episodes=0"):
        evaluation.evaluate_episodes(maml, infinite, num_episodes=0)


def test_is_classification_follows_the_episode_checks():
    assert evaluation.is_classification(np.array([0, 1]), np.zeros([2, 5]))
    assert not evaluation.is_classification(np.zeros([2, 1]), np.zeros([2, 1]))  # regression
    assert not evaluation.is_classification(np.array([0, 1]), np.zeros([2, 1]))  # one output
