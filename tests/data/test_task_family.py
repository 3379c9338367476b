"""`TaskFamily`: a regression family of one's own in one method, deterministic and checked."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta


class LineTasks(tfmeta.data.TaskFamily):
    """y = slope * x + intercept, drawn per task."""

    def sample(self, seed, support_shots, query_shots):
        task_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        slope, intercept = tf.unstack(tf.random.stateless_uniform([2], task_seed, -3, 3))
        x = tf.random.stateless_uniform([support_shots + query_shots, 1], x_seed, -5, 5)
        return {**self.split(x, slope * x + intercept, support_shots), "slope": slope}


def test_a_subclass_with_one_method_yields_meta_batches_of_its_law():
    dataset = LineTasks().episodes(support_shots=3, query_shots=4, meta_batch_size=5, seed=0)
    assert dataset.element_spec["support_x"].shape == (5, 3, 1)
    assert dataset.element_spec["query_y"].shape == (5, 4, 1)
    batch = next(iter(dataset))
    x = np.concatenate([batch["support_x"], batch["query_x"]], axis=1)[..., 0]
    y = np.concatenate([batch["support_y"], batch["query_y"]], axis=1)[..., 0]
    slopes = np.diff(y, axis=1) / np.diff(x, axis=1)
    np.testing.assert_allclose(slopes, np.repeat(batch["slope"].numpy()[:, None], 6, 1), rtol=1e-3)


def test_same_seed_same_tasks_and_finite_counts():
    first = [b["support_y"].numpy() for b in LineTasks().episodes(2, 2, 3, num_episodes=7, seed=4)]
    again = [b["support_y"].numpy() for b in LineTasks().episodes(2, 2, 3, num_episodes=7, seed=4)]
    assert len(first) == 2  # the incomplete third meta-batch is dropped
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


def test_a_family_without_sample_or_with_a_wrong_episode_is_named():
    with pytest.raises(NotImplementedError, match=r"TaskFamily must implement sample"):
        tfmeta.data.TaskFamily().episodes(2, 2)

    class NoQueries(tfmeta.data.TaskFamily):
        def sample(self, seed, support_shots, query_shots):
            return {"support_x": tf.zeros([support_shots, 1])}

    with pytest.raises(
        ValueError, match=r"Expected NoQueries\.sample to return a dict with the keys"
    ):
        NoQueries().episodes(2, 2)
    with pytest.raises(ValueError, match=r"`support_shots` to be an integer >= 1\. Received: supp"):
        LineTasks().episodes(0, 2)
