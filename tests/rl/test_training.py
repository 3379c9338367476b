import json

import keras
import numpy as np
import pytest

from tests.rl.rl_testing import restart
from tfmeta import rl
from tfmeta.rl import training


def assert_policy_weights(learner: rl.PolicyMAML, expected: list) -> None:
    """The learner's policy holds exactly `expected` (bit for bit)."""
    for want, got in zip(expected, learner.policy.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)


def test_a_run_stopped_by_its_budget_continues_to_the_weights_of_an_uninterrupted_one(
    trpo_learner, tmp_path
):
    learner, initial = trpo_learner
    options = dict(iterations=3, meta_batch_size=2, seed=4, iterations_per_epoch=1, verbose=0)

    restart(learner, initial)
    straight = training.train(learner, tmp_path / "straight", **options)
    straight_weights = learner.policy.get_weights()
    assert straight["meta_iterations"] == 3 and len(straight["history"]) == 3

    restart(learner, initial)
    first = training.train(learner, tmp_path / "parts", budget_seconds=1e-6, **options)
    assert first["meta_iterations"] == 1  # stopped at the first epoch end
    assert (
        json.loads((tmp_path / "parts" / training.CLOCK_FILE).read_text())["meta_iterations"] == 1
    )
    spent = training.train(learner, tmp_path / "parts", budget_seconds=1e-6, **options)
    assert spent["meta_iterations"] == 1  # the budget is spent: nothing more

    restart(learner, initial)  # a new process
    second = training.train(learner, tmp_path / "parts", **options)
    assert second["resumed_from"] == 1 and second["meta_iterations"] == 3
    assert [row["epoch"] for row in second["history"]] == ["0", "1", "2"]
    assert_policy_weights(learner, straight_weights)
    assert second["train_seconds"] >= first["train_seconds"]


def test_a_continued_run_keeps_its_epoch_size_and_stops_at_the_iterations_asked(
    trpo_learner, tmp_path
):
    # The first part's epoch is clamped to its 2 iterations; asking for 4 later
    # must train 2 more (one epoch of 2), not a new epoch of 4 on top of the 2.
    learner, initial = trpo_learner
    restart(learner, initial)
    options = dict(meta_batch_size=2, seed=4, iterations_per_epoch=10, verbose=0)
    first = training.train(learner, tmp_path, iterations=2, **options)
    assert first["meta_iterations"] == 2 and first["iterations_per_epoch"] == 2
    assert training.read_clock(tmp_path)["iterations_per_epoch"] == 2

    restart(learner, initial)  # a new process
    second = training.train(learner, tmp_path, iterations=4, **options)
    assert second["resumed_from"] == 2 and second["meta_iterations"] == 4
    assert second["iterations_per_epoch"] == 2
    assert [row["epoch"] for row in second["history"]] == ["0", "1"]
    assert json.loads((tmp_path / training.CLOCK_FILE).read_text())["meta_iterations"] == 4


def test_a_run_records_its_family_and_refuses_a_learner_on_another(trpo_learner, tmp_path):
    learner, initial = trpo_learner
    restart(learner, initial)
    options = dict(iterations=1, meta_batch_size=2, seed=4, verbose=0)
    training.train(learner, tmp_path, **options)
    recorded = json.loads((tmp_path / training.FAMILY_FILE).read_text())
    assert recorded == json.loads(json.dumps(learner.family.get_config()))

    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    family = learner.family
    learner.family = rl.Navigation2D(horizon=family.horizon + 1)
    try:
        with pytest.raises(ValueError, match=r"is on task family \{.*'horizon': 8.*horizon': 9"):
            training.train(learner, tmp_path, **options)
    finally:
        learner.family = family
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


class _PolicyEachEpoch(keras.callbacks.Callback):
    """Records the policy's weights at every epoch end (before `BestPolicy` could change them)."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.policy.get_weights())


def test_the_best_epochs_policy_is_kept_across_parts_and_restored(trpo_learner, tmp_path):
    learner, initial = trpo_learner
    options = dict(iterations=4, meta_batch_size=2, seed=4, iterations_per_epoch=1, verbose=0)
    restart(learner, initial)
    recorder = _PolicyEachEpoch()
    straight = training.train(learner, tmp_path / "straight", callbacks=[recorder], **options)
    returns = [float(row["return_after"]) for row in straight["history"]]
    best = int(np.argmax(returns))
    assert straight["best"] == {
        "monitor": "return_after",
        "value": returns[best],
        "meta_iterations": best + 1,
        "weights": f"best_policy-{best + 1}.weights.h5",
    }
    kept = sorted(p.name for p in (tmp_path / "straight").glob("best_policy-*"))
    assert kept == [straight["best"]["weights"]]  # the earlier bests' files are gone
    record = training.restore_best(learner, tmp_path / "straight")
    assert record == straight["best"]
    assert_policy_weights(learner, recorder.weights[best])

    restart(learner, initial)  # the same run in two parts keeps the same best
    training.train(learner, tmp_path / "parts", budget_seconds=1e-6, **options)
    restart(learner, initial)
    parts = training.train(learner, tmp_path / "parts", **options)
    assert parts["best"]["meta_iterations"] == straight["best"]["meta_iterations"]
    assert parts["best"]["value"] == pytest.approx(straight["best"]["value"], rel=1e-6)


def test_a_run_without_a_kept_best_policy_refuses_to_restore_one(trpo_learner, tmp_path):
    learner, initial = trpo_learner
    restart(learner, initial)
    run = training.train(
        learner, tmp_path, iterations=1, meta_batch_size=2, seed=4, verbose=0, keep_best=None
    )
    assert run["best"] is None and not (tmp_path / training.BEST_FILE).exists()
    weights = learner.policy.get_weights()
    with pytest.raises(FileNotFoundError, match=r"No best\.json in .*kept no best policy"):
        training.restore_best(learner, tmp_path)
    assert_policy_weights(learner, weights)


def test_keeping_the_best_of_a_log_the_epochs_lack_is_refused(trpo_learner, tmp_path):
    learner, initial = trpo_learner
    restart(learner, initial)
    with pytest.raises(ValueError, match=r"hold 'return_after_3'.*Received: \[.*'return_after'"):
        training.train(learner, tmp_path, iterations=1, meta_batch_size=2, seed=4, verbose=0,
                       keep_best="return_after_3")


def test_a_failed_write_of_a_new_best_policy_keeps_the_previous_one(
    trpo_learner, tmp_path, monkeypatch
):
    learner, initial = trpo_learner
    restart(learner, initial)
    best = training.BestPolicy(tmp_path)
    best.set_model(learner)
    best.on_epoch_end(0, {"return_after": -5.0})
    best.on_epoch_end(1, {"return_after": -7.0})  # not better: nothing written
    best.on_epoch_end(1, {"return_after": float("nan")})  # nor is NaN
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["best.json", "best_policy-0.weights.h5"]
    assert json.loads(before["best.json"])["value"] == -5.0

    learner.optimizer.iterations.assign(learner.optimizer_steps_per_iteration)  # one more
    learner.policy.set_weights([w + 1.0 for w in initial])

    def fail(path, *args, **kwargs):
        open(path, "wb").write(b"partial")  # a half-written file, then the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(learner.policy, "save_weights", fail)
    with pytest.raises(OSError, match="No space left"):
        best.on_epoch_end(2, {"return_after": -1.0})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporaries
    assert best.best == -5.0
    training.restore_best(learner, tmp_path)
    assert_policy_weights(learner, initial)


def test_a_run_keeping_its_best_by_one_log_refuses_another(trpo_learner, tmp_path):
    learner, initial = trpo_learner
    restart(learner, initial)
    options = dict(meta_batch_size=2, seed=4, iterations_per_epoch=1, verbose=0)
    training.train(learner, tmp_path, iterations=1, **options)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"by 'return_after'.*keep_best='return_after'"):
        training.train(learner, tmp_path, iterations=2, keep_best="return_before", **options)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
