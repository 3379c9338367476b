import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.rl.rl_testing import restart, small_learner, tiny_policy
from tfmeta import adaptation, checkpointing, rl
from tfmeta.rl.task_batched import TaskBatchedModel


def _weights(model):
    return [v.numpy().copy() for v in model.policy.trainable_variables]


def test_fit_takes_one_trust_region_step_per_meta_iteration(trpo_learner):
    learner, initial = trpo_learner
    restart(learner, initial)
    history = learner.fit(
        learner.family.task_batches(2, seed=0), steps_per_epoch=2, epochs=1, verbose=0
    )
    assert set(history.history) == {"return_before", "return_after", "kl"}
    assert 0.0 < history.history["kl"][0] <= 0.01
    assert learner.meta_iterations == 2
    assert any(not np.array_equal(a, b) for a, b in zip(initial, _weights(learner)))


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(trpo_learner, tmp_path):
    learner, initial = trpo_learner
    batches = learner.family.task_batches(2, seed=5)

    def run(epochs, directory, initial_epoch=0):
        learner.fit(
            batches.skip(initial_epoch),
            steps_per_epoch=1,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[checkpointing.MetaCheckpoint(directory)],
            verbose=0,
        )
        return _weights(learner)

    restart(learner, initial)
    straight = run(2, tmp_path / "straight")
    restart(learner, initial)
    run(1, tmp_path / "resumed")  # killed after the first epoch's checkpoint
    restart(learner, initial)  # a new process: weights and step counter come from the checkpoint
    resumed = run(
        2, tmp_path / "resumed", initial_epoch=checkpointing.latest_step(tmp_path / "resumed")
    )
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


def test_evaluate_reports_the_return_after_each_adaptation_step_and_keeps_the_weights(trpo_learner):
    learner, _ = trpo_learner
    before = _weights(learner)
    results = learner.evaluate(
        learner.family.task_batches(3, seed=1, num_batches=1), return_dict=True, verbose=0
    )
    assert sorted(results) == ["return_step_0", "return_step_1", "return_step_2"]
    returns = learner.adaptation_returns(
        learner.family.sample_tasks(3, seed=0), tf.constant([0, 1])
    )
    assert returns.shape == (3, 3)
    for a, b in zip(before, _weights(learner)):
        np.testing.assert_array_equal(a, b)


def test_save_and_load_round_trip(trpo_learner, tmp_path):
    learner, _ = trpo_learner
    learner.save(tmp_path / "learner.keras")
    loaded = keras.saving.load_model(tmp_path / "learner.keras")
    assert isinstance(loaded.family, rl.Navigation2D) and loaded.family.horizon == 8
    assert (loaded.inner_learning_rate, loaded.eval_inner_steps) == (0.1, 2)
    for a, b in zip(_weights(learner), _weights(loaded)):
        np.testing.assert_array_equal(a, b)


def test_evaluation_learning_rates_can_differ_per_step():
    learner = small_learner(eval_inner_steps=3, eval_inner_learning_rate=[0.5, 0.25, 0.25])
    assert learner.eval_learning_rates == [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="one `eval_inner_learning_rate` per evaluation step"):
        small_learner(eval_inner_steps=3, eval_inner_learning_rate=[0.5, 0.25])


def test_clipped_surrogate_takes_outer_steps_optimizer_steps_per_meta_iteration():
    learner = small_learner(outer_steps=2, first_order=True)  # first order: quicker to trace
    learner.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = _weights(learner)
    learner.fit(learner.family.task_batches(2, seed=0), steps_per_epoch=1, epochs=1, verbose=0)
    assert int(learner.optimizer.iterations) == 2 and learner.meta_iterations == 1
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(learner)))


def test_the_clipped_surrogate_update_is_traced_once(monkeypatch):
    """Its optimizer's slots are made before the first trace; made inside it, they would make
    tf.function trace the whole (in-graph) meta-iteration a second time."""
    traces = []
    outer_update = rl.PolicyMAML.outer_update.python_function

    def counted(self, *args):
        traces.append(args)
        return outer_update(self, *args)

    monkeypatch.setattr(rl.PolicyMAML, "outer_update",
                        tf.function(counted, reduce_retracing=True, autograph=False))
    learner = small_learner(outer_steps=2, first_order=True)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3))
    learner.fit(learner.family.task_batches(2, seed=0), steps_per_epoch=1, epochs=2, verbose=0)
    assert len(traces) == 1 and int(learner.optimizer.iterations) == 4


def test_a_policy_for_another_action_space_is_rejected_naming_the_family():
    discrete = rl.categorical_mlp_policy(2, 3, hidden_units=(4,))
    with pytest.raises(
        ValueError, match=r"4 outputs.*continuous.*navigation_2d.*Received.*3 outputs"
    ):
        rl.PolicyMAML(discrete, rl.Navigation2D())


def test_a_policy_for_other_observations_is_rejected():
    with pytest.raises(ValueError, match=r"taking 2 observation features"):
        rl.PolicyMAML(rl.gaussian_mlp_policy(3, 2, hidden_units=(4,)), rl.Navigation2D())


def test_an_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown task family 'cartpole'.*navigation_2d"):
        rl.PolicyMAML(tiny_policy(dtype="float32"), "cartpole")


@pytest.mark.parametrize(
    "arguments",
    [
        dict(inner_steps=-1),
        dict(inner_learning_rate=-0.1),
        dict(rollouts_per_task=0),
        dict(discount=1.5),
    ],
)
def test_bad_settings_are_rejected(arguments):
    with pytest.raises(ValueError, match="Expected"):
        small_learner(**arguments)


def test_compile_refuses_a_loss():
    with pytest.raises(ValueError, match="without `loss`"):
        small_learner().compile(loss="mse")


def test_the_baseline_fit_is_a_saved_setting(tmp_path):
    learner = small_learner(baseline_fit="previous_task")
    assert learner.baseline.fit_on == "previous_task"
    learner.save(tmp_path / "learner.keras")
    assert keras.saving.load_model(tmp_path / "learner.keras").baseline.fit_on == "previous_task"
    with pytest.raises(ValueError, match="`fit_on` to be one of"):
        small_learner(baseline_fit="pooled")


def test_the_inner_objective_is_a_saved_setting(tmp_path):
    learner = small_learner(inner_objective="likelihood_ratio")
    learner.save(tmp_path / "learner.keras")
    loaded = keras.saving.load_model(tmp_path / "learner.keras")
    assert loaded.inner_objective == "likelihood_ratio"
    with pytest.raises(ValueError, match=r"`inner_objective` in .*inner_objective='dice'"):
        small_learner(inner_objective="dice")


def test_unscaled_advantages_keep_each_tasks_spread_and_are_a_saved_setting(tmp_path):
    learner = small_learner(scale_advantages=False)
    rollouts = learner.sample(
        TaskBatchedModel.tile(adaptation.initial_weights(learner.policy)[0], 3),
        learner.family.sample_tasks(3, seed=0),
        tf.constant([1, 2], tf.int64),
        4,
    )
    centred = learner.policy_gradient_batch(rollouts).advantages.numpy()
    scaled = small_learner().policy_gradient_batch(rollouts).advantages.numpy()
    mask = rollouts.mask.numpy() > 0
    spreads = [centred[task][mask[task]].std() for task in range(3)]
    assert max(spreads) > 1.05 * min(spreads)  # the tasks' steps differ in size
    for task, spread in enumerate(spreads):
        assert centred[task][mask[task]].mean() == pytest.approx(0.0, abs=1e-5)
        np.testing.assert_allclose(centred[task], scaled[task] * spread, rtol=1e-4, atol=1e-6)
    learner.save(tmp_path / "learner.keras")
    assert keras.saving.load_model(tmp_path / "learner.keras").scale_advantages is False
