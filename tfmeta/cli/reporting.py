"""What a run reports: the held-out evaluation, `metrics.json`, figures and a summary line."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from tfmeta import evaluation
from tfmeta.cli import figures
from tfmeta.cli.options import RunOptions
from tfmeta.data import temporary_files
from tfmeta.learners import MetaLearner

METRICS_FILE = "metrics.json"
COMPLETED = "completed"
DIVERGED = "diverged"
RUN_README = """\
# A tfmeta run

Written by `tfmeta train`; `tfmeta evaluate` and `tfmeta export` read it.

- `.tfmeta_run`: marks this directory as a run, so `tfmeta train` may write into it
  (it refuses any other directory that is not empty).
- `options.json`: the options of the run. Running `tfmeta train` again with the same
  options continues it from the last complete checkpoint.
- `checkpoints/`: `ckpt-<meta-update>` (learner weights, optimizer state, step counter),
  written atomically every `--steps_per_epoch` meta-updates; `checkpoint` names the latest.
- `history.csv`: one row per epoch (training loss and metrics); `logs/`: TensorBoard
  (`tensorboard --logdir logs`).
- `learner.keras`: the trained learner (`keras.saving.load_model`).
- `metrics.json`: `status` (`completed` or `diverged`), meta-updates done, where the run
  resumed from, and the held-out evaluation (mean with 95% confidence interval).
- `learning_curve.png`; `accuracy.png` (classification) or `adaptation.png` (sinusoid).
- `export/`: what `tfmeta export` wrote, unless `--export_dir` chose another place.
"""


def write_atomically(path: pathlib.Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename; a failure keeps `path`.

    A kill can leave the temporary (`tfmeta.data.temporary_files`); `train`
    removes such leftovers when it starts.
    """
    temporary = temporary_files.temporary_path(path)
    try:
        try:
            temporary.write_text(text)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:  # name the file, not its temporary
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def read_metrics(output_dir: pathlib.Path) -> dict[str, Any]:
    """The run's `metrics.json`, or `{}` if there is none.

    Raises:
        ValueError: naming the file, if it is not a JSON object.
    """
    path = output_dir / METRICS_FILE
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        metrics = error
    if not isinstance(metrics, dict):
        raise ValueError(
            f"{path} is not a tfmeta metrics file ({metrics}); delete it, and `tfmeta evaluate` "
            "writes a new one"
        )
    return metrics


def _write_metrics(output_dir: pathlib.Path, metrics: dict[str, Any]) -> None:
    write_atomically(output_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")


def record_divergence(
    output_dir: pathlib.Path, options: RunOptions, run: dict[str, Any], message: str
) -> None:
    """Writes `metrics.json` for a run stopped by a NaN or Inf loss."""
    _write_metrics(
        output_dir,
        {"status": DIVERGED, "error": message, **run, "options": dataclasses.asdict(options)},
    )


def held_out_evaluation(learner: MetaLearner, source, options: RunOptions):
    """Adapts to every held-out task; returns `(eval dict, per-task accuracies or None)`."""
    result: dict[str, Any] = {
        "episodes": options.eval_episodes,
        "shots": options.evaluation_shots,
        "queries": options.evaluation_queries,
    }
    steps = getattr(learner, "eval_inner_steps", None)
    if steps is not None:
        result["inner_steps"] = steps
    episodes = source.eval_episodes()
    if not source.classification:
        losses = evaluation.per_task_values(learner, episodes)
        result["query_loss_after_adaptation"] = evaluation.mean_and_ci95(losses)
        return result, None
    losses = []

    def accuracy_and_loss(targets: np.ndarray, logits: np.ndarray) -> float:
        losses.append(float(learner.task_loss(targets, logits)))
        return evaluation.accuracy(targets, logits)

    accuracies = evaluation.per_task_values(learner, episodes, accuracy_and_loss)
    result["ways"] = options.evaluation_ways
    result["accuracy"] = evaluation.mean_and_ci95(accuracies)
    result["query_loss_after_adaptation"] = evaluation.mean_and_ci95(np.asarray(losses))
    return result, accuracies


def report(
    learner: MetaLearner,
    source,
    options: RunOptions,
    output_dir: pathlib.Path,
    run: dict[str, Any],
) -> dict[str, Any]:
    """Evaluates on held-out tasks, writes `metrics.json` and the figures, prints a summary.

    Args:
        run: facts about training to record (`iterations_done`, `resumed_from`).

    Returns:
        The metrics written.
    """
    result, accuracies = held_out_evaluation(learner, source, options)
    task = _task_name(options)
    try:
        written = figures.write_figures(
            output_dir,
            options.algorithm,
            learner=learner,
            sinusoid_batch=None if source.classification else next(iter(source.eval_episodes(3))),
            accuracies=accuracies,
            title=f"{options.algorithm} on {options.dataset}, {task}",
        )
        figure_note = "".join(f", {name}" for name in written)
    except ImportError:
        written = []
        figure_note = "; no figures: install the plot extra, pip install 'tfmeta[plot]'"
    metrics = {
        "status": COMPLETED,
        **run,
        "options": dataclasses.asdict(options),
        "eval": result,
        "figures": written,
    }
    _write_metrics(output_dir, metrics)
    after = f" after {result['inner_steps']} step(s)" if "inner_steps" in result else ""
    if accuracies is None:
        score = result["query_loss_after_adaptation"]
        what = f"held-out query MSE{after}: {score['mean']:.3f} +/- {score['ci95']:.3f}"
    else:
        score = result["accuracy"]
        what = (
            f"held-out {task} accuracy{after}: "
            f"{100 * score['mean']:.2f}% +/- {100 * score['ci95']:.2f}%"
        )
    print(
        f"tfmeta: {options.algorithm} on {options.dataset}, {run.get('iterations_done')} "
        f"{options.step_name}; {what} ({score['tasks']} tasks)\n"
        f"tfmeta: wrote {output_dir}/ (learner.keras, metrics.json{figure_note})",
        flush=True,
    )
    return metrics


def _task_name(options: RunOptions) -> str:
    if options.classification:
        return f"{options.evaluation_ways}-way {options.evaluation_shots}-shot"
    return f"{options.evaluation_shots}-shot"
