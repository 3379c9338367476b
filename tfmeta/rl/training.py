"""`train`: meta-trains a `PolicyMAML` in a run directory, resumably, within a time budget.

The directory holds `checkpoints/` (`tfmeta.checkpointing.MetaCheckpoint`,
written at every epoch end), `history.csv` (Keras's `CSVLogger`), `logs/`
(TensorBoard), `clock.json` (training time spent across resumed parts, and
the run's epoch size, fixed by its first part so that every part's epochs line
up with the checkpoints and the history rows of the ones before) and
`family.json` (the task family's config: a run continues only on the family
it started with, e.g. with the same observation) and `best.json` with the
`best_policy-<meta-iteration>.weights.h5` it names: the policy of the epoch
with the best mean return after adaptation on the training tasks, which
Finn et al. 2017 evaluated ("the model with the best average return during
training"; `restore_best`).
Running `train` again on the same directory continues from the last complete
checkpoint: the task stream is a pure function of the seed and the
meta-iteration (`TaskFamily.task_batches`), and each meta-iteration of the
weights, the optimizer state and its seed, so a resumed run ends with the
weights of an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import time
from typing import Sequence

import keras

from tfmeta import checkpointing
from tfmeta.data.temporary_files import write_atomically, write_through_temporary
from tfmeta.keep_best import KeepBest
from tfmeta.rl.policy_maml import PolicyMAML

CHECKPOINT_DIR = "checkpoints"
HISTORY_FILE = "history.csv"
CLOCK_FILE = "clock.json"
FAMILY_FILE = "family.json"
BEST_FILE = "best.json"
BEST_WEIGHTS_PREFIX = "best_policy-"
BEST_WEIGHTS_SUFFIX = ".weights.h5"  # what `keras.Model.save_weights` requires


def read_clock(directory: str | os.PathLike) -> dict:
    """`{"train_seconds", "meta_iterations", "iterations_per_epoch"}` recorded in a run directory.

    A new run reads zeros and no epoch size; runs written before the epoch
    size was recorded lack that key.
    """
    path = pathlib.Path(directory) / CLOCK_FILE
    if not path.is_file():
        return {"train_seconds": 0.0, "meta_iterations": 0, "iterations_per_epoch": None}
    return json.loads(path.read_text())


class TrainingClock(keras.callbacks.Callback):
    """Records training time across resumed parts; stops once a budget is spent.

    At every epoch end it adds the time since training started to what
    earlier parts spent and writes it to `clock.json` with the meta-iterations
    done and the epoch size (`fit`'s `steps_per_epoch`); once the total reaches
    `budget_seconds` it stops training at that epoch end, right after the
    epoch's checkpoint (place it after `MetaCheckpoint`).

    Args:
        directory: the run directory.
        budget_seconds: the training time allowed in all parts together
            (None: no limit).
    """

    def __init__(self, directory: str | os.PathLike, budget_seconds: float | None = None):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.budget_seconds = budget_seconds
        self.seconds_before = read_clock(directory)["train_seconds"]
        self.total_seconds = self.seconds_before

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.total_seconds = self.seconds_before + time.perf_counter() - self._start
        record = {
            "train_seconds": self.total_seconds,
            "meta_iterations": self.model.meta_iterations,
            "iterations_per_epoch": self.params["steps"],
        }
        write_atomically(self.directory / CLOCK_FILE, json.dumps(record))
        if self.budget_seconds is not None and self.total_seconds >= self.budget_seconds:
            self.model.stop_training = True


def read_best(directory: str | os.PathLike) -> dict | None:
    """`{"monitor", "value", "meta_iterations", "weights"}` of a run's best epoch, or None."""
    path = pathlib.Path(directory) / BEST_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class BestPolicy(KeepBest):
    """Keeps the policy of the epoch with the highest `monitor` (by default the mean return
    after adaptation on the epoch's training tasks), across resumed parts.

    When an epoch beats the best recorded in `best.json`, the policy's weights
    (with learned step sizes, the learner's: `PolicyMAML.meta_learned_model`)
    are written to `best_policy-<meta-iteration>.weights.h5` (through a
    temporary file and a rename), then `best.json` is replaced to name them,
    then older weights files are deleted: a kill at any point leaves
    `best.json` naming a complete file. A run continued from a part that did
    not keep its best (older runs) keeps the best of the epochs from there on.

    Args:
        directory: the run directory.
        monitor: the epoch log to maximise (`PolicyMAML`'s `return_after`);
            an epoch without it raises a `ValueError`.

    Raises:
        ValueError: the run's `best.json` was kept by another `monitor`.
    """

    def __init__(self, directory: str | os.PathLike, monitor: str = "return_after"):
        record = read_best(directory)
        if record is not None and record["monitor"] != monitor:
            raise ValueError(
                f"The run in {str(directory)!r} keeps its best epoch by {record['monitor']!r} "
                f"({BEST_FILE}); received monitor={monitor!r}. Continue it with "
                f"keep_best={record['monitor']!r}."
            )
        super().__init__(
            monitor,
            "max",
            self._save_policy,
            best=None if record is None else record["value"],
            required=True,
        )
        self.directory = pathlib.Path(directory)

    def _save_policy(self, epoch: int, value: float) -> None:
        del epoch  # the record names the meta-iteration, which a resumed run keeps counting
        iterations = self.model.meta_iterations
        name = f"{BEST_WEIGHTS_PREFIX}{iterations}{BEST_WEIGHTS_SUFFIX}"
        write_through_temporary(
            self.directory / name,
            self.model.meta_learned_model().save_weights,
            suffix=BEST_WEIGHTS_SUFFIX,
        )
        record = {"monitor": self.monitor, "value": value, "meta_iterations": iterations,
                  "weights": name}
        write_atomically(self.directory / BEST_FILE, json.dumps(record))
        for old in self.directory.glob(f"{BEST_WEIGHTS_PREFIX}*{BEST_WEIGHTS_SUFFIX}"):
            if old.name != name:
                old.unlink()


def restore_best(learner: PolicyMAML, directory: str | os.PathLike) -> dict:
    """Sets `learner`'s policy to the run's best-epoch weights (`BestPolicy`); returns its record.

    Raises:
        FileNotFoundError: the run kept no best policy.
    """
    record = read_best(directory)
    if record is None:
        raise FileNotFoundError(
            f"No {BEST_FILE} in {str(directory)!r}: the run kept no best policy (it was "
            "trained with `keep_best=None`, or before runs kept one, and not continued since)."
        )
    learner.meta_learned_model().load_weights(pathlib.Path(directory) / record["weights"])
    return record


def _check_family(directory: pathlib.Path, config: dict) -> None:
    """Records the run's family config, or refuses a learner on another family.

    Raises:
        ValueError: `directory` holds a run on another family (nothing is
            written).
    """
    path = directory / FAMILY_FILE
    config = json.loads(json.dumps(config))  # as recorded: tuples become lists
    if not path.is_file():
        write_atomically(path, json.dumps(config))
        return
    recorded = json.loads(path.read_text())
    if recorded != config:
        raise ValueError(
            f"The run in {str(directory)!r} is on task family {recorded} ({FAMILY_FILE}); "
            f"this learner's family is {config}. Continue it with the family it started "
            "with, or start the new run in another directory."
        )


def _trim_history(path: pathlib.Path, epochs: int) -> None:
    """Keeps the header and the rows of the first `epochs` epochs (a kill may leave newer ones)."""
    if not path.is_file():
        return
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if not rows:
        return
    kept = [rows[0]] + [
        row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < epochs
    ]
    text = io.StringIO()
    csv.writer(text).writerows(kept)
    write_atomically(path, text.getvalue())


def train(
    learner: PolicyMAML,
    directory: str | os.PathLike,
    iterations: int,
    meta_batch_size: int,
    seed: int = 0,
    iterations_per_epoch: int = 10,
    budget_seconds: float | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
    keep_best: str | None = "return_after",
) -> dict:
    """Meta-trains `learner` for `iterations` meta-iterations in `directory`, or continues there.

    Each epoch is `iterations_per_epoch` meta-iterations (at most
    `iterations`) and ends with a checkpoint; `iterations` is rounded up to
    whole epochs. A run that finds checkpoints resumes from the newest
    complete one, keeping the epoch size of its first part (so a run started
    with `iterations=2` and continued with `iterations=4` trains two more
    meta-iterations, in one more epoch of two); one whose budget is spent
    trains no further.

    Args:
        learner: a compiled `PolicyMAML`.
        directory: the run directory (created when needed).
        iterations: meta-iterations in all.
        meta_batch_size: tasks per meta-iteration.
        seed: seeds the task stream.
        iterations_per_epoch: meta-iterations between checkpoints (a
            resumed run keeps the one it started with).
        budget_seconds: training time allowed in all parts together; the
            run stops at the first epoch end past it.
        callbacks: more Keras callbacks for `fit`.
        verbose: `fit`'s progress output.
        keep_best: the epoch log whose best (highest) epoch's policy is kept
            (`BestPolicy`, `restore_best`), or None to keep none.

    Raises:
        ValueError: `directory` holds a run on another task family
            (`family.json`; e.g. another observation); nothing is changed.

    Returns:
        `{"meta_iterations", "train_seconds", "resumed_from", "history",
        "iterations_per_epoch", "best"}`; `history` holds the rows of
        `history.csv` (all parts), one per epoch of `iterations_per_epoch`
        meta-iterations; `best` is `read_best`'s record (None if none kept).

    Example:

    ```python
    from tfmeta import rl

    family = rl.Navigation2D()
    learner = rl.PolicyMAML(rl.gaussian_mlp_policy(2, 2, activation="relu"), family,
                            inner_learning_rate=0.5)
    learner.compile(optimizer=rl.TRPO(max_kl=0.01))
    rl.training.train(learner, "runs/navigation", iterations=100, meta_batch_size=20)
    ```
    """
    for name, value in (("iterations", iterations), ("iterations_per_epoch", iterations_per_epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected `{name}` to be an integer >= 1. Received: {name}={value!r}")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _check_family(directory, learner.family.get_config())
    checkpoint_dir = directory / CHECKPOINT_DIR
    done = checkpointing.latest_step(checkpoint_dir) // learner.optimizer_steps_per_iteration
    recorded = read_clock(directory).get("iterations_per_epoch")
    if done and recorded:
        iterations_per_epoch = recorded  # epochs, checkpoints and history rows stay aligned
    else:
        iterations_per_epoch = min(iterations_per_epoch, iterations)
    initial_epoch = done // iterations_per_epoch
    _trim_history(directory / HISTORY_FILE, initial_epoch)
    clock = TrainingClock(directory, budget_seconds)
    spent = budget_seconds is not None and clock.seconds_before >= budget_seconds
    epochs = math.ceil(iterations / iterations_per_epoch)
    if done < iterations and not spent:
        batches = learner.family.task_batches(meta_batch_size, seed).skip(done)
        learner.fit(
            batches,
            steps_per_epoch=iterations_per_epoch,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[
                *callbacks,
                keras.callbacks.CSVLogger(str(directory / HISTORY_FILE), append=True),
                keras.callbacks.TensorBoard(str(directory / "logs")),
                *([] if keep_best is None else [BestPolicy(directory, keep_best)]),
                checkpointing.MetaCheckpoint(checkpoint_dir),  # after the records of its epoch
                clock,
            ],
            verbose=verbose,
            shuffle=False,  # the task stream is random already
        )
    else:  # nothing to train: restore the last checkpoint for evaluation
        checkpoint = checkpointing.MetaCheckpoint(checkpoint_dir)
        checkpoint.set_model(learner)
        checkpoint.on_train_begin()
    history_path = directory / HISTORY_FILE
    history = (
        list(csv.DictReader(io.StringIO(history_path.read_text())))
        if history_path.is_file()
        else []
    )
    return {
        "meta_iterations": learner.meta_iterations,
        "train_seconds": clock.total_seconds,
        "resumed_from": done or None,
        "history": history,
        "iterations_per_epoch": iterations_per_epoch,
        "best": read_best(directory),
    }
