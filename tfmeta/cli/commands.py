"""`tfmeta train` and `tfmeta evaluate`: a run directory that explains itself.

`<output_dir>/` holds:

- `checkpoints/`: the last complete epoch (Keras `BackupAndRestore`); the same
  command continues from it after an interruption.
- `logs/`: TensorBoard event files; `history.csv`: one row per epoch.
- `learner.keras`: the meta-trained learner (`keras.saving.load_model`).
- `metrics.json`: the options and the held-out evaluation.
- `adaptation.png`, `learning_curve.png`: figures (with the `plot` extra).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import tempfile

import keras
import numpy as np

from tfmeta import evaluation, models
from tfmeta.cli.options import RunOptions
from tfmeta.data import SinusoidTasks
from tfmeta.learners import MAML

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, ImportError)
_TRAIN_SEED_OFFSET = 0
_EVAL_SEED_OFFSET = 1_000_003  # held-out tasks: a stream disjoint from training's


def build_learner(options: RunOptions) -> MAML:
    """The compiled learner the options describe."""
    keras.utils.set_random_seed(options.seed)
    learner = MAML(
        models.mlp(),
        inner_learning_rate=options.inner_learning_rate,
        inner_steps=options.inner_steps,
        eval_inner_learning_rate=options.eval_inner_learning_rate,
        eval_inner_steps=options.eval_inner_steps,
        first_order=options.algorithm == "fomaml",
    )
    learner.compile(optimizer=keras.optimizers.Adam(options.meta_learning_rate), loss="mse")
    return learner


def _eval_episodes(options: RunOptions, meta_batch_size: int = 25):
    return SinusoidTasks().episodes(
        support_shots=options.eval_shots or options.shots,
        query_shots=100,
        meta_batch_size=min(meta_batch_size, options.eval_episodes),
        num_episodes=options.eval_episodes,
        seed=options.seed + _EVAL_SEED_OFFSET,
    )


def _write_atomically(path: pathlib.Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def _save_learner(learner: MAML, path: pathlib.Path) -> None:
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    learner.save(temporary)
    os.replace(temporary, path)


def _read_history(path: pathlib.Path) -> dict[str, list[float]]:
    rows = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return {name: rows[name].tolist() for name in rows.dtype.names if name != "epoch"}


def evaluate_and_report(learner: MAML, options: RunOptions, output_dir: pathlib.Path) -> dict:
    """Evaluates on held-out tasks, writes metrics.json and the figures, prints a summary."""
    losses = evaluation.per_task_values(learner, _eval_episodes(options))
    metrics = {
        "options": dataclasses.asdict(options),
        "iterations_done": int(learner.optimizer.iterations.numpy()),
        "eval": {
            "query_loss_after_adaptation": evaluation.mean_and_ci95(losses),
            "eval_inner_steps": learner.eval_inner_steps,
            "eval_shots": options.eval_shots or options.shots,
        },
    }
    _write_atomically(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    figures = _write_figures(learner, options, output_dir)
    result = metrics["eval"]["query_loss_after_adaptation"]
    print(
        f"tfmeta: {options.algorithm} on {options.dataset}, {metrics['iterations_done']} meta-updates; "
        f"held-out query MSE after {learner.eval_inner_steps} step(s): "
        f"{result['mean']:.3f} +/- {result['ci95']:.3f} ({result['tasks']} tasks)\n"
        f"tfmeta: wrote {output_dir}/ (learner.keras, metrics.json{figures})"
    )
    return metrics


def _write_figures(learner: MAML, options: RunOptions, output_dir: pathlib.Path) -> str:
    try:
        from tfmeta import plots

        batch = next(iter(_eval_episodes(options, meta_batch_size=3)))
        plots.plot_sinusoid_adaptation(learner, batch, output_dir / "adaptation.png")
        history = output_dir / "history.csv"
        if history.exists():
            plots.plot_history(_read_history(history), output_dir / "learning_curve.png")
            return ", adaptation.png, learning_curve.png"
        return ", adaptation.png"
    except ImportError:
        return "; no figures: install the plot extra, pip install 'tfmeta[plot]'"


def train(options: RunOptions) -> dict:
    """Meta-trains, evaluates on held-out tasks, saves the learner; resumes an interrupted run."""
    output_dir = pathlib.Path(options.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    learner = build_learner(options)
    episodes = SinusoidTasks().episodes(
        support_shots=options.shots,
        query_shots=options.query_shots,
        meta_batch_size=options.meta_batch_size,
        seed=options.seed + _TRAIN_SEED_OFFSET,
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(output_dir / "checkpoints"), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(output_dir / "logs")),
        keras.callbacks.TerminateOnNaN(),
    ]
    learner.fit(
        episodes,
        steps_per_epoch=options.steps_per_epoch,
        epochs=math.ceil(options.iterations / options.steps_per_epoch),
        callbacks=callbacks,
        verbose=2,
    )
    _save_learner(learner, output_dir / "learner.keras")
    return evaluate_and_report(learner, options, output_dir)


def evaluate(options: RunOptions) -> dict:
    """Re-evaluates the learner saved by `tfmeta train` in `--output_dir`."""
    output_dir = pathlib.Path(options.output_dir)
    path = output_dir / "learner.keras"
    if not path.exists():
        raise FileNotFoundError(
            f"no trained learner at {path}; run `tfmeta train --output_dir={output_dir}` first"
        )
    learner = keras.saving.load_model(path)
    return evaluate_and_report(learner, options, output_dir)


COMMANDS = {"train": train, "evaluate": evaluate}
