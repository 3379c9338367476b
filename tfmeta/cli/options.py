"""The flags of the `tfmeta` command and the options object built from them."""

from __future__ import annotations

import dataclasses
import math

from absl import flags

ALGORITHMS = ("maml", "fomaml")
DATASETS = ("sinusoid",)

flags.DEFINE_enum("algorithm", "maml", ALGORITHMS, "Meta-learning algorithm.")
flags.DEFINE_string("dataset", "sinusoid", f"Task source: one of {DATASETS}.")
flags.DEFINE_integer("shots", 10, "Support examples per class (K); per task for regression.")
flags.DEFINE_integer("query_shots", 10, "Query examples per class; per task for regression.")
flags.DEFINE_integer("eval_shots", None, "Support examples in evaluation (default: --shots).")
flags.DEFINE_integer("meta_batch_size", 25, "Tasks per meta-update.")
flags.DEFINE_float("inner_learning_rate", 0.01, "Inner-loop SGD step size in meta-training.")
flags.DEFINE_integer("inner_steps", 1, "Inner-loop steps in meta-training.")
flags.DEFINE_float("eval_inner_learning_rate", None, "Inner step size in evaluation (default: --inner_learning_rate).")
flags.DEFINE_integer("eval_inner_steps", 10, "Inner-loop steps in evaluation.")
flags.DEFINE_float("meta_learning_rate", 1e-3, "Adam learning rate of the outer loop.")
flags.DEFINE_integer("iterations", 10000, "Meta-updates in all.")
flags.DEFINE_integer("steps_per_epoch", 500, "Meta-updates between checkpoints and log lines.")
flags.DEFINE_integer("eval_episodes", 600, "Held-out tasks in the final evaluation.")
flags.DEFINE_integer("seed", 0, "Seed of weights and tasks: the same seed repeats the run.")
flags.DEFINE_string("output_dir", "tfmeta_runs/sinusoid_maml", "Where the run writes checkpoints, logs, metrics and plots.")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Everything a command needs, independent of absl."""

    algorithm: str = "maml"
    dataset: str = "sinusoid"
    shots: int = 10
    query_shots: int = 10
    eval_shots: int | None = None
    meta_batch_size: int = 25
    inner_learning_rate: float = 0.01
    inner_steps: int = 1
    eval_inner_learning_rate: float | None = None
    eval_inner_steps: int = 10
    meta_learning_rate: float = 1e-3
    iterations: int = 10000
    steps_per_epoch: int = 500
    eval_episodes: int = 600
    seed: int = 0
    output_dir: str = "tfmeta_runs/sinusoid_maml"


def from_flags(flag_values: flags.FlagValues) -> RunOptions:
    """Reads `RunOptions` from parsed absl flags."""
    return RunOptions(
        **{field.name: flag_values[field.name].value for field in dataclasses.fields(RunOptions)}
    )


def check_options(options: RunOptions) -> None:
    """Raises a ValueError naming the first bad option and its fix."""
    if options.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown --algorithm={options.algorithm}; choose one of {list(ALGORITHMS)}")
    if options.dataset not in DATASETS:
        raise ValueError(f"unknown --dataset={options.dataset}; choose one of {list(DATASETS)}")
    for name in ("shots", "query_shots", "meta_batch_size", "iterations", "steps_per_epoch", "eval_episodes"):
        value = getattr(options, name)
        if value < 1:
            raise ValueError(f"--{name} must be >= 1; received --{name}={value}")
    if options.eval_shots is not None and options.eval_shots < 1:
        raise ValueError(f"--eval_shots must be >= 1; received --eval_shots={options.eval_shots}")
    for name in ("inner_steps", "eval_inner_steps"):
        if getattr(options, name) < 0:
            raise ValueError(f"--{name} must be >= 0; received --{name}={getattr(options, name)}")
    for name in ("inner_learning_rate", "eval_inner_learning_rate", "meta_learning_rate"):
        value = getattr(options, name)
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"--{name} must be a finite number >= 0; received --{name}={value}")
