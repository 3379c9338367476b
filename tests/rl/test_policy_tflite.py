"""The LiteRT policy export: adapts on the device exactly as the learner does, refuses bad input."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import small_learner, tiny_policy
from tfmeta import adaptation, rl
from tfmeta.exporters import OnDeviceModel, OnDevicePolicy, UnsupportedModelError, custom_operators
from tfmeta.exporters.policy import adapted_parameters
from tfmeta.exporters.policy_tflite import baseline_values, example_rollouts, export_policy_tflite
from tfmeta.exporters.tflite import interpreter
from tfmeta.rl import policy_gradient
from tfmeta.rl.rollouts import Rollouts
from tfmeta.rl.task_batched import TaskBatchedModel
from tfmeta.rl.task_family import TaskFamily

ROLLOUTS = 3


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    learner = small_learner(
        tiny_policy(seed=3, dtype="float32"), eval_inner_steps=2,
        eval_inner_learning_rate=[0.1, 0.05],
    )
    path = tmp_path_factory.mktemp("device") / "navigation.tflite"
    info = export_policy_tflite(learner, path, rollouts=ROLLOUTS)
    return learner, path.read_bytes(), info


def _runners(content):
    model = interpreter(content)
    return {name: model.get_signature_runner(name) for name in model.get_signature_list()}


def _rollouts(learner, seed):
    rollouts = example_rollouts(learner, ROLLOUTS, seed=seed)
    return rollouts._replace(observations=rollouts.observations * 0.3)


def _tensors(rollouts):
    return Rollouts(*[tf.constant(x) for x in rollouts])


def _adapted_weights(learner, rollouts_list, rates):
    """The learner's weights after one inner step per batch of rollouts."""
    params = TaskBatchedModel.tile(adaptation.initial_weights(learner.policy)[0], 1)
    for rollouts, rate in zip(rollouts_list, rates):
        batch = learner.policy_gradient_batch(
            tf.nest.map_structure(lambda x: x[None], _tensors(rollouts))
        )
        params = learner.inner_step(params, batch, rate)
    return params


def test_the_model_needs_builtin_ops_only_and_describes_itself(exported):
    learner, content, info = exported
    assert custom_operators(content) == []
    runners = _runners(content)
    assert set(runners) == set(info["signatures"])
    assert info["rollouts"] == ROLLOUTS and info["horizon"] == 8
    assert info["learning_rates"] == [0.1, 0.05]
    size = sum(entry["size"] for entry in info["weights_layout"])
    assert runners["get_weights"]()["weights"].shape == (size,)


@pytest.mark.parametrize("seed", [0, 1])
def test_adapt_gives_each_observation_the_learners_adapted_distribution(exported, seed):
    learner, content, _ = exported
    adapt = _runners(content)["adapt"]
    rollouts = _rollouts(learner, seed)
    observations = np.random.default_rng(seed + 10).normal(size=(4, 2)).astype(np.float32)
    expected = adapted_parameters(learner, _tensors(rollouts), tf.constant(observations)).numpy()
    for row in range(4):  # one observation per call, each as in the learner's batch
        received = adapt(**rollouts._asdict(), new_observations=observations[row:row + 1])
        np.testing.assert_allclose(received["distribution"][0], expected[row], atol=1e-5)
        np.testing.assert_allclose(received["actions"][0], expected[row, :2], atol=1e-5)


def test_train_steps_follow_the_evaluation_step_sizes_and_reset_restores(exported):
    learner, content, _ = exported
    runners = _runners(content)
    initial = runners["reset"]()["weights"]
    first, second = _rollouts(learner, 2), _rollouts(learner, 3)
    loss = runners["train_step"](**first._asdict())["loss"]
    runners["train_step"](**second._asdict())
    observation = np.array([[0.2, -0.1]], np.float32)
    adapted = _adapted_weights(learner, [first, second], learner.eval_learning_rates)
    expected, _ = learner.batched.stateless_call(adapted, [], tf.constant(observation)[None])
    np.testing.assert_allclose(
        runners["act"](observations=observation)["distribution"], expected[0], atol=1e-5
    )
    batch = learner.policy_gradient_batch(
        tf.nest.map_structure(lambda x: x[None], _tensors(first))
    )
    outputs = learner.policy(tf.reshape(batch.observations, [-1, 2]))
    surrogate = policy_gradient.inner_loss(learner.family.distribution)(
        batch.targets, tf.reshape(outputs, [1, ROLLOUTS, 8, 4])
    )
    np.testing.assert_allclose(loss, surrogate, rtol=1e-5, atol=1e-6)
    saved = runners["get_weights"]()["weights"]
    np.testing.assert_array_equal(runners["reset"]()["weights"], initial)
    runners["set_weights"](weights=saved)
    np.testing.assert_allclose(
        runners["act"](observations=observation)["distribution"], expected[0], atol=1e-5
    )


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda r: r._replace(observations=np.where(np.arange(2) == 0, np.nan, r.observations)),
        lambda r: r._replace(rewards=r.rewards * np.inf),
        lambda r: r._replace(mask=r.mask * 2.0),
    ],
    ids=["nan_observation", "infinite_rewards", "mask_above_one"],
)
def test_bad_rollouts_give_nan_and_leave_the_device_state_unchanged(exported, corrupt):
    learner, content, _ = exported
    runners = _runners(content)
    before = runners["reset"]()["weights"]
    bad = corrupt(_rollouts(learner, 4))
    bad = bad._replace(observations=bad.observations.astype(np.float32),
                       rewards=bad.rewards.astype(np.float32))
    assert np.isnan(runners["train_step"](**bad._asdict())["loss"])
    np.testing.assert_array_equal(runners["get_weights"]()["weights"], before)
    outputs = runners["adapt"](**bad._asdict(), new_observations=np.zeros((1, 2), np.float32))
    assert np.isnan(outputs["distribution"]).all()


class _DiscreteFamily(TaskFamily):
    """Three discrete actions from 2-D observations; only its spaces matter for an export."""

    name, task_dim, observation_dim, horizon = "discrete_test", 1, 2, 6
    distribution = rl.Categorical(3)

    def get_config(self) -> dict:
        return {"name": self.name}


def test_a_categorical_policy_adapts_on_the_device_like_the_learner(tmp_path):
    keras.utils.set_random_seed(0)
    policy = rl.categorical_mlp_policy(2, 3, hidden_units=(5,))
    learner = rl.PolicyMAML(policy, _DiscreteFamily(), inner_learning_rate=0.3,
                            rollouts_per_task=2, eval_inner_steps=1)
    export_policy_tflite(learner, tmp_path / "discrete.tflite")
    adapt = _runners((tmp_path / "discrete.tflite").read_bytes())["adapt"]
    rollouts = example_rollouts(learner, 2, seed=5)
    observation = np.array([[0.5, -1.0]], np.float32)
    received = adapt(**rollouts._asdict(), new_observations=observation)
    expected = adapted_parameters(learner, _tensors(rollouts), tf.constant(observation)).numpy()
    np.testing.assert_allclose(received["distribution"], expected, atol=1e-5)
    assert received["actions"].dtype == np.int32 and received["actions"][0] == expected.argmax()
    out_of_range = rollouts._replace(actions=rollouts.actions + 3)
    assert np.isnan(adapt(**out_of_range._asdict(), new_observations=observation)["distribution"]
                    ).all()
    policy = OnDevicePolicy(tmp_path / "discrete.tflite")
    with pytest.raises(ValueError, match=r"Expected `actions` in 0..2. Received values 3..5"):
        policy.adapt(*out_of_range, observation)
    with pytest.raises(ValueError, match="integer action ids of shape"):
        policy.adapt(*rollouts._replace(actions=rollouts.actions * 1.0), observation)


def test_refusals_name_the_problem_and_leave_an_existing_file_alone(trpo_learner, tmp_path):
    learner, _ = trpo_learner
    path = tmp_path / "policy.tflite"
    path.write_bytes(b"an app's model")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_policy_tflite(learner, path)
    assert path.read_bytes() == b"an app's model"
    with pytest.raises(ValueError, match=r"`rollouts` >= 1. Received: rollouts=0"):
        export_policy_tflite(learner, tmp_path / "new.tflite", rollouts=0)
    with pytest.raises(ValueError, match="Expected a tfmeta.rl.PolicyMAML"):
        export_policy_tflite(learner.policy, tmp_path / "new.tflite")
    normalized = keras.Sequential([keras.Input((2,)), keras.layers.LayerNormalization(),
                                   rl.GaussianHead(2)])
    with pytest.raises(UnsupportedModelError, match="LayerNormalization"):
        export_policy_tflite(small_learner(normalized), tmp_path / "new.tflite")
    assert not os.path.exists(tmp_path / "new.tflite")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["halfcheetah_vel", "ant_dir"])
def test_mujoco_policies_adapt_on_their_own_rollouts_within_float32(family, tmp_path):
    """Real rollouts make the baseline's ridge system ill-conditioned (about 1e12 for
    HalfCheetah; singular in float32 for Ant, some of whose features stay constant): the device
    solves it in float32 by QR on centred features, the learner in float64; the export's
    check (`verify`, 1e-4 of the output scale) runs on these rollouts."""
    pytest.importorskip("mujoco")
    learner = rl.recipes.build_learner(family)
    tasks = learner.family.sample_tasks(1, seed=3, split="test")
    sampled = learner.adaptation_rollouts(tasks, seed=5)[0]
    rollouts = Rollouts(*[np.asarray(x[0]) for x in sampled])
    export_policy_tflite(learner, tmp_path / f"{family}.tflite", verification_rollouts=rollouts)


def test_float32_baseline_values_equal_the_learners_float64_fit():
    learner = small_learner()
    rng = np.random.default_rng(7)
    observations = tf.constant(rng.normal(size=(4, 8, 2)) * 3, tf.float32)
    returns = tf.constant(rng.normal(size=(4, 8)) * 20, tf.float32)
    mask = tf.constant((np.arange(8) < rng.integers(3, 9, size=(4, 1))).astype(np.float32))
    expected = learner.baseline(observations[None], returns[None], mask[None])[0]
    received = baseline_values(learner.baseline, observations, returns, mask)
    np.testing.assert_allclose(received * mask, expected * mask, atol=1e-4 * 20)


def test_on_device_policy_checks_each_call_and_runs_the_signatures(exported):
    learner, content, _ = exported
    policy = OnDevicePolicy(content, num_threads=1)
    rollouts = _rollouts(learner, 6)
    observation = np.array([[0.3, 0.1]], np.float32)
    expected = adapted_parameters(learner, _tensors(rollouts), tf.constant(observation)).numpy()
    np.testing.assert_allclose(policy.adapt(*rollouts, observation)["distribution"], expected,
                               atol=1e-5)
    policy.train_step(*rollouts)
    np.testing.assert_allclose(policy.act(observation)["distribution"], expected, atol=1e-5)
    before = policy.get_weights()
    bad = [
        (rollouts._replace(observations=rollouts.observations[:, :4]),
         r"`observations` of shape \(3, 8, 2\).*Received shape \(3, 4, 2\)"),
        (rollouts._replace(rewards=rollouts.rewards * np.nan), "finite values in `rewards`"),
        (rollouts._replace(mask=rollouts.mask * 1.5), r"`mask` values in \[0, 1\]"),
    ]
    for rollouts_in, message in bad:
        with pytest.raises(ValueError, match=message):
            policy.train_step(*rollouts_in)
    with pytest.raises(ValueError, match=r"`observations` of shape \(1, 2\)"):
        policy.act(np.zeros((2, 2)))
    np.testing.assert_array_equal(policy.get_weights(), before)


def test_each_on_device_wrapper_refuses_the_other_kind_of_model(exported):
    _, content, _ = exported
    with pytest.raises(ValueError, match=r"export_tflite \(format 'tflite'\).*'tflite_policy'"):
        OnDeviceModel(content)


def test_a_policy_with_unscaled_advantages_adapts_on_the_device_like_the_learner(tmp_path):
    learner = small_learner(tiny_policy(seed=4, dtype="float32"), scale_advantages=False,
                            inner_learning_rate=0.02)
    info = export_policy_tflite(learner, tmp_path / "centred.tflite", rollouts=ROLLOUTS)
    assert info["scale_advantages"] is False
    adapt = _runners((tmp_path / "centred.tflite").read_bytes())["adapt"]
    rollouts = _rollouts(learner, seed=2)
    observations = np.random.default_rng(7).normal(size=(3, 2)).astype(np.float32)
    expected = adapted_parameters(learner, _tensors(rollouts), tf.constant(observations)).numpy()
    unadapted = learner.policy(observations).numpy()
    assert np.abs(expected - unadapted).max() > 1e-3  # the step moved the policy
    for row in range(3):
        received = adapt(**rollouts._asdict(), new_observations=observations[row:row + 1])
        np.testing.assert_allclose(received["distribution"][0], expected[row], atol=1e-5)
