"""Task format: N-way K-shot shapes checked against the learner's model."""

import numpy as np
import pytest

import exporter_testing as et
import tfmeta
from tfmeta.exporters import task_format


def test_classification_format(conv4_learner):
    task = task_format.task_format(conv4_learner, 5, 2)
    assert task.support_size == 10 and task.input_shape == (28, 28, 1)
    assert task.target_shape == () and task.outputs_shape == (5,)
    episode = task.example_episode(query_size=3)
    assert episode["support_x"].shape == (10, 28, 28, 1) and episode["query_x"].shape[0] == 3
    np.testing.assert_array_equal(np.bincount(episode["support_y"]), [2] * 5)


def test_regression_format_takes_targets_shaped_like_outputs():
    learner = et.compiled(tfmeta.MAML(tfmeta.models.mlp()), loss="mse")
    task = task_format.task_format(learner, None, 10)
    assert (task.support_size, task.target_shape, task.target_dtype.name) == (10, (1,), "float32")


def test_ways_must_match_the_model_head(mlp_learner):
    with pytest.raises(ValueError, match=r"output 3 logits .* Received: model output shape \(5,\)"):
        task_format.task_format(mlp_learner, 3, 1)


@pytest.mark.parametrize("ways, shots", [(0, 1), (5, 0), (5, 1.5), (True, 1)])
def test_sizes_must_be_positive_integers(mlp_learner, ways, shots):
    with pytest.raises(ValueError, match="to be an integer >= 1"):
        task_format.task_format(mlp_learner, ways, shots)


def test_prototype_learners_need_ways():
    learner = et.compiled(tfmeta.ProtoNet(tfmeta.models.mlp(20, (8,), 8), ways=5))
    assert task_format.task_format(learner, 5, 1).outputs_shape == (5,)
    with pytest.raises(ValueError, match="Received: ways=4, learner.ways=5"):
        task_format.task_format(learner, 4, 1)
    with pytest.raises(ValueError, match="Received: ways=None"):
        task_format.task_format(learner, None, 1)
