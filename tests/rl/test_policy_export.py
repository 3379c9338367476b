import os

import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import restart
from tfmeta import adaptation
from tfmeta.exporters import metadata
from tfmeta.exporters.policy import export_policy
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_batched import TaskBatchedModel


@pytest.fixture(scope="module")
def exported(trpo_learner, tmp_path_factory):
    learner, initial = trpo_learner
    restart(learner, initial)
    path = export_policy(learner, tmp_path_factory.mktemp("models") / "navigation")
    return learner, path, tf.saved_model.load(path)


def _request(seed=0, rollouts=3, horizon=8):
    rng = np.random.default_rng(seed)
    mask = np.ones((rollouts, horizon), np.float32)
    mask[0, 5:] = 0.0  # a trajectory that ended early
    return {
        "observations": rng.normal(size=(rollouts, horizon, 2)).astype(np.float32) * 0.3,
        "actions": rng.normal(size=(rollouts, horizon, 2)).astype(np.float32),
        "rewards": -rng.uniform(size=(rollouts, horizon)).astype(np.float32) * mask,
        "mask": mask,
        "new_observations": rng.normal(size=(4, 2)).astype(np.float32) * 0.3,
    }


def test_the_export_is_a_versioned_servable_with_metadata(exported):
    _, path, _ = exported
    assert os.path.basename(path) == "1" and os.path.isfile(os.path.join(path, "saved_model.pb"))
    info = metadata.read(path)
    assert info["family"]["name"] == "navigation_2d" and info["horizon"] == 8
    assert info["signatures"]["adapt"] == [
        "observations",
        "actions",
        "rewards",
        "mask",
        "new_observations",
    ]


def test_adapt_returns_the_actions_of_the_policy_the_learner_adapts(exported):
    learner, _, served = exported
    request = _request()
    response = served.signatures["adapt"](**{k: tf.constant(v) for k, v in request.items()})
    rollouts = Rollouts(
        *(tf.constant(request[k])[None] for k in ("observations", "actions", "rewards", "mask"))
    )
    batch = learner.policy_gradient_batch(rollouts)
    params = TaskBatchedModel.tile(adaptation.initial_weights(learner.policy)[0], 1)
    adapted = learner.inner_step(params, batch, learner.eval_learning_rates[0])
    expected, _ = learner.batched.stateless_call(
        adapted, [], tf.constant(request["new_observations"])[None]
    )
    np.testing.assert_allclose(response["distribution"], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(response["actions"], expected[0][:, :2], rtol=1e-5, atol=1e-6)
    before = served.signatures["serving_default"](
        observations=tf.constant(request["new_observations"])
    )
    np.testing.assert_allclose(
        before["distribution"], learner.policy(request["new_observations"]), rtol=1e-5
    )
    assert not np.allclose(before["actions"], response["actions"])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("rewards", np.nan, "finite values in `rewards`"),
        ("mask", 2.0, r"`mask` values in \[0, 1\]"),
    ],
)
def test_bad_requests_fail_naming_the_field(exported, field, value, message):
    _, _, served = exported
    request = _request()
    request[field][1, 2] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served.signatures["adapt"](**{k: tf.constant(v) for k, v in request.items()})


def test_rollouts_of_another_horizon_are_refused(exported):
    _, _, served = exported
    request = _request(horizon=6)
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
        served.signatures["adapt"](**{k: tf.constant(v) for k, v in request.items()})
