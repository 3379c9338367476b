"""What a run reports: the held-out evaluation, `metrics.json`, figures and a summary line."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import numpy as np

from tfmeta import evaluation, losses
from tfmeta.cli import figures
from tfmeta.cli import options as options_lib
from tfmeta.cli.options import RunOptions
from tfmeta.data import temporary_files
from tfmeta.learners import MetaLearner

METRICS_FILE = "metrics.json"
EVALUATIONS_DIR = "evaluations"
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
- `history.csv`: one row per epoch: training loss and metrics, and `val_*` on the
  validation tasks (`--val_episodes`, evaluated after every epoch).
- `logs/`: TensorBoard (`tensorboard --logdir logs`): per epoch in `train/` and
  `validation/`; every `--log_every` meta-updates in `steps/` (training metrics, tasks/s,
  query loss and accuracy before and after adaptation on a few held-out probe tasks, the
  probe episode's images, adapted sinusoid curves).
- `best.keras`: the learner of the epoch with the best validation score, kept while training.
- `learner.keras`: the trained learner (`keras.saving.load_model`): the best validation
  epoch's when the run validates (`metrics.json` says which), else the last.
- `metrics.json`: `status` (`completed` or `diverged`), meta-updates done, where the run
  resumed from, the epoch selected, and the held-out evaluation (mean with 95% confidence
  interval).
- `learning_curve.png`; `accuracy.png` (classification) or `adaptation.png` (sinusoid).
- `evaluations/`: what each `tfmeta evaluate` wrote (`<setting>.json` and its figure).
- `export/`: what `tfmeta export` wrote, unless `--export_dir` chose another place.
"""


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
    temporary_files.write_atomically(
        output_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n"
    )


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
    scores = evaluation.task_scores(learner, source.eval_episodes())
    if "accuracy" in scores:
        result["ways"] = options.evaluation_ways
        result["accuracy"] = evaluation.mean_and_ci95(scores["accuracy"])
    if "source" in scores:  # several benchmarks, `--eval_episodes` tasks of each
        result["per_source"] = _per_source(scores, source.source_names)
    result["query_loss_after_adaptation"] = evaluation.mean_and_ci95(scores["loss"])
    if options.algorithm == "cnp":  # its loss is the NLL; the MSE of its mean compares with MSEs
        squared_errors = evaluation.per_task_values(
            learner, source.eval_episodes(),
            lambda targets, predictions: float(np.mean(
                losses.predictive_mean_squared_error(targets, predictions))),
        )
        result["query_mse_of_mean"] = evaluation.mean_and_ci95(squared_errors)
    return result, scores.get("accuracy")


def _per_source(scores: dict[str, np.ndarray], names: list[str]) -> dict[str, dict[str, float]]:
    """Each source's query accuracy (mean, 95% CI, tasks), by name; its `"source"` index is
    its place in `names`."""
    return {
        name: evaluation.mean_and_ci95(scores["accuracy"][scores["source"] == index])
        for index, name in enumerate(names)
    }


def evaluation_name(options: RunOptions, trained_query_statistics: str | None = None) -> str:
    """The file name (no suffix) of a `tfmeta evaluate` result: its setting, spelled out.

    E.g. `5way_1shot_15queries_10steps_600tasks_seed0`; the sinusoid drops
    the ways, a given `--eval_inner_learning_rate` adds `_lr<rate>`, and a
    `--query_statistics` other than the run's (`trained_query_statistics`)
    adds `_<mode>_statistics`.
    """
    parts = [f"{options.evaluation_ways}way"] if options.classification else []
    parts += [
        f"{options.evaluation_shots}shot",
        f"{options.evaluation_queries}queries",
        f"{options.eval_inner_steps}steps",
        f"{options.eval_episodes}tasks",
        f"seed{options.seed}",
    ]
    if options.eval_inner_learning_rate is not None:
        parts.append(f"lr{options.eval_inner_learning_rate:g}")
    if options.query_statistics != trained_query_statistics:
        parts.append(f"{options.query_statistics}_statistics")
    return "_".join(parts)


def _count_of_tasks(count: int) -> str:
    """`"1 task"`, `"600 tasks"`: the evaluation size in the command's summary line."""
    return f"{count} task{'' if count == 1 else 's'}"


def report(
    learner: MetaLearner,
    source,
    options: RunOptions,
    output_dir: pathlib.Path,
    run: dict[str, Any],
    name: str | None = None,
) -> dict[str, Any]:
    """Evaluates on held-out tasks, writes the metrics and the figures, prints a summary.

    Args:
        run: facts about training to record (`iterations_done`, `resumed_from`, ...).
        name: None for `train`'s report (`metrics.json`, `learning_curve.png`,
            `accuracy.png` or `adaptation.png` in `output_dir`); a name for
            `tfmeta evaluate`, which writes `evaluations/<name>.json` and
            `evaluations/<name>_<figure>.png` and leaves the run's own files alone.

    Returns:
        The metrics written.
    """
    result, accuracies = held_out_evaluation(learner, source, options)
    task = _task_name(options)
    directory = output_dir if name is None else output_dir / EVALUATIONS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    try:
        written = figures.write_figures(
            directory,
            options.algorithm,
            learner=learner,
            sinusoid_batch=(next(iter(source.eval_episodes(3)))
                            if options.dataset == options_lib.SINUSOID else None),
            accuracies=accuracies,
            title=f"{options.algorithm} on {options.dataset}, {task}",
            prefix="" if name is None else f"{name}_",
            history=output_dir / "history.csv" if name is None else None,
        )
        figure_note = "".join(f", {file}" for file in written)
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
    metrics_path = directory / (METRICS_FILE if name is None else f"{name}.json")
    temporary_files.write_atomically(metrics_path, json.dumps(metrics, indent=2) + "\n")
    after = f" after {result['inner_steps']} step(s)" if "inner_steps" in result else ""
    if options.algorithm == "cnp":
        nll, score = result["query_loss_after_adaptation"], result["query_mse_of_mean"]
        what = (f"held-out query NLL: {nll['mean']:.3f} +/- {nll['ci95']:.3f}, MSE of the "
                f"predicted mean: {score['mean']:.3f} +/- {score['ci95']:.3f}")
    elif accuracies is None:
        score = result["query_loss_after_adaptation"]
        what = f"held-out query MSE{after}: {score['mean']:.3f} +/- {score['ci95']:.3f}"
    else:
        score = result["accuracy"]
        what = (
            f"held-out {task} accuracy{after}: "
            f"{100 * score['mean']:.2f}% +/- {100 * score['ci95']:.2f}%"
        )
    files = ", ".join(
        [*([options_lib.LEARNER_FILE] if name is None else []), metrics_path.name, *written]
    )
    where = directory if name is None else directory.relative_to(output_dir.parent)
    per_source = "".join(
        f"tfmeta:   {source_name}: {100 * part['mean']:.2f}% +/- {100 * part['ci95']:.2f}% "
        f"({_count_of_tasks(part['tasks'])})\n"
        for source_name, part in result.get("per_source", {}).items()
    )
    print(
        f"tfmeta: {options.algorithm} on {options.dataset}, {run.get('iterations_done')} "
        f"{options.step_name}; {what} ({_count_of_tasks(score['tasks'])})\n{per_source}"
        f"tfmeta: wrote {where}/ ({files}{'' if written else figure_note})",
        flush=True,
    )
    return metrics


def _task_name(options: RunOptions) -> str:
    if options.classification:
        return f"{options.evaluation_ways}-way {options.evaluation_shots}-shot"
    return f"{options.evaluation_shots}-shot"
