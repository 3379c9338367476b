"""`--cpu_threads`: what `tfmeta train` and `evaluate` hand `tfmeta.cpu_threads`, and when."""

import pytest

from tfmeta import cpu_threads
from tfmeta.cli import main
from tfmeta.cli.options import RunOptions

QUICK = ["--iterations=4", "--steps_per_epoch=2", "--eval_episodes=4", "--val_episodes=0",
         "--meta_batch_size=3"]


@pytest.fixture
def configure_calls(monkeypatch):
    """The `(policy, tasks per step)` of every `cpu_threads.configure` call (none applied)."""
    calls = []

    def record(policy, meta_batch_size=2, cores=None):
        calls.append((policy, meta_batch_size))
        return policy

    monkeypatch.setattr(cpu_threads, "configure", record)
    return calls


def test_train_and_evaluate_pass_the_policy_and_the_meta_batch(run_tfmeta, configure_calls,
                                                               tmp_path):
    run = tmp_path / "run"
    trained = run_tfmeta("train", "--cpu_threads=per_op", f"--output_dir={run}", *QUICK)
    assert trained.returncode == 0, trained.stderr
    evaluated = run_tfmeta("evaluate", "--cpu_threads=per_task", f"--output_dir={run}",
                           "--eval_episodes=4")
    assert evaluated.returncode == 0, evaluated.stderr
    assert configure_calls == [("per_op", 3), ("per_task", 3)]


def test_finetune_steps_on_one_batch(configure_calls):
    main._configure_cpu_threads(RunOptions(algorithm="finetune", meta_batch_size=8))
    main._configure_cpu_threads(RunOptions(algorithm="reptile", meta_batch_size=8))
    assert configure_calls == [("auto", 1), ("auto", 8)]


def test_only_auto_gives_way_to_a_runtime_already_running(monkeypatch):
    def refuse(policy, meta_batch_size=2, cores=None):
        raise RuntimeError("TensorFlow's runtime already started")

    monkeypatch.setattr(cpu_threads, "configure", refuse)
    main._configure_cpu_threads(RunOptions(cpu_threads="auto"))  # keeps the pools in force
    with pytest.raises(RuntimeError, match="already started"):
        main._configure_cpu_threads(RunOptions(cpu_threads="per_task"))
