"""Per-task evaluation: the few-shot convention of a mean over episodes with a 95% CI."""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from tfmeta.argument_validation import check_integer
from tfmeta.learners.base import MetaLearner

PerTaskMetric = Callable[[np.ndarray, np.ndarray], float]


def mean_and_ci95(values: np.ndarray) -> dict[str, float]:
    """Mean of per-task values and the half-width of its 95% confidence interval.

    The convention of the few-shot literature: `1.96 * std / sqrt(n)`.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("Expected at least one per-task value. Received: none")
    return {
        "mean": float(values.mean()),
        "ci95": float(1.96 * values.std() / np.sqrt(values.size)),
        "tasks": int(values.size),
    }


def per_task_values(
    learner: MetaLearner, episodes: tf.data.Dataset, metric: PerTaskMetric | None = None
) -> np.ndarray:
    """Adapts to every task of `episodes` and scores its query predictions.

    Args:
        learner: a compiled learner; its evaluation inner loop is used.
        episodes: a finite dataset of meta-batches.
        metric: `metric(query_y, predictions) -> float` for one task; the
            default is the learner's task loss. A metric may return a tuple
            of floats; the result then has one column per entry.

    Returns:
        One value (or row of values) per task, in dataset order.
    """
    if metric is None:
        def metric(targets, predictions):
            return float(learner.task_loss(targets, predictions))

    values = []
    for batch in episodes:
        for targets, task_predictions in _query_results(learner, batch):
            values.append(metric(targets, task_predictions))
    return np.asarray(values)


def _query_results(learner: MetaLearner, batch) -> list[tuple[np.ndarray, np.ndarray]]:
    """`(query_y, predictions)` of each task of a meta-batch; of padded episodes
    (`tfmeta.data.variable_episodes`), those of the real queries only."""
    predictions = learner.predict_on_batch(batch)
    targets = batch["query_y"].numpy()
    if "query_mask" not in batch:
        return list(zip(targets, predictions))
    masks = batch["query_mask"].numpy()
    return [(t[m], p[m]) for t, p, m in zip(targets, predictions, masks)]


def accuracy(targets: np.ndarray, logits: np.ndarray) -> float:
    """Share of query examples whose arg-max logit is the label."""
    return float(np.mean(np.argmax(logits, axis=-1) == targets))


def is_classification(targets: np.ndarray, predictions: np.ndarray) -> bool:
    """Whether one task's predictions are class scores for its targets (class ids).

    As the learners' episode checks tell (`tfmeta.data.episode.class_count`):
    integer targets with one axis fewer than the predictions, whose last
    axis holds more than one score. Anything else is regression.
    """
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    return (
        targets.dtype.kind in "iu"
        and targets.ndim == predictions.ndim - 1
        and predictions.shape[-1] > 1
    )


def task_scores(
    learner: MetaLearner, episodes: tf.data.Dataset, num_episodes: int | None = None
) -> dict[str, np.ndarray]:
    """Adapts to each task and scores its queries: the per-task values `evaluate_episodes` sums up.

    Args:
        learner: a compiled learner; its evaluation inner loop is used.
        episodes: a dataset of meta-batches (any number of tasks per batch).
        num_episodes: score the first this many tasks; None scores every
            task of a finite dataset.

    Returns:
        `{"loss": [tasks]}` (the compiled loss on the adapted query
        predictions), plus `"accuracy"` when the predictions are class scores
        and `"source"` (each task's source index) for episodes that carry it
        (`tfmeta.data.variable_episodes` over several sources).

    Raises:
        ValueError: for a `num_episodes` that is not an integer >= 1, an
            infinite dataset without `num_episodes`, or fewer tasks than asked for.
    """
    num_episodes = check_integer("num_episodes", num_episodes, allow_none=True)
    if num_episodes is None and episodes.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "Expected a finite dataset of episodes, or num_episodes=N to score the first N "
            "tasks. Received: an infinite dataset (episodes(..., num_episodes=None))"
        )
    losses, accuracies, sources = [], [], []
    classification = None
    for batch in episodes:
        batch_sources = batch["source"].numpy() if "source" in batch else None
        for index, (targets, task_predictions) in enumerate(_query_results(learner, batch)):
            if batch_sources is not None:
                sources.append(int(batch_sources[index]))
            if classification is None:
                classification = is_classification(targets, task_predictions)
            losses.append(float(learner.task_loss(targets, task_predictions)))
            if classification:
                accuracies.append(accuracy(targets, task_predictions))
            if len(losses) == num_episodes:
                break
        if len(losses) == num_episodes:
            break
    if num_episodes is not None and len(losses) < num_episodes:
        raise ValueError(
            f"Expected at least num_episodes={num_episodes} tasks in `episodes`. "
            f"Received: {len(losses)}"
        )
    scores = {"loss": np.asarray(losses)}
    if classification:
        scores["accuracy"] = np.asarray(accuracies)
    if sources:
        scores["source"] = np.asarray(sources)
    return scores


def evaluate_episodes(
    learner: MetaLearner, episodes: tf.data.Dataset, num_episodes: int | None = None
) -> dict[str, float]:
    """Mean query score over held-out tasks, with its 95% CI: the few-shot convention.

    Each task adapts with the learner's evaluation inner loop
    (`eval_inner_steps`, ...) and is scored on its query set. Classification
    (predictions are class scores for integer labels) reports accuracy and
    loss; regression reports the loss (e.g. MSE) only. The literature
    evaluates 600 test episodes and reports `mean +- 1.96 * std / sqrt(n)`.

    Args:
        learner: a compiled learner.
        episodes: a dataset of meta-batches, e.g. `FewShotEpisodes.episodes(...,
            meta_batch_size=20, num_episodes=600, seed=1)` or a
            `TaskFamily`'s `episodes(..., num_episodes=600)`.
        num_episodes: tasks to evaluate (the first ones of `episodes`); None
            evaluates every task of a finite dataset.

    Returns:
        Classification: `{"accuracy", "ci95", "loss", "loss_ci95",
        "episodes"}`; regression: `{"loss", "loss_ci95", "episodes"}`: means
        over the tasks and the half-widths of their 95% confidence intervals.
        Episodes that carry their source (`tfmeta.data.variable_episodes`)
        add `"per_source"`: `{source index: {"accuracy", "ci95", "episodes"}}`
        (`"loss"`, `"loss_ci95"` and `"episodes"` for regression).

    Raises:
        ValueError: see `task_scores`.

    Example:

    ```python
    test = sources["test"].episodes(ways=5, shots=1, queries=15, meta_batch_size=20,
                                    num_episodes=600, seed=1)
    tfmeta.evaluation.evaluate_episodes(learner, test)  # {"accuracy": 0.97, "ci95": 0.004, ...}
    ```
    """
    scores = task_scores(learner, episodes, num_episodes)
    loss = mean_and_ci95(scores["loss"])
    result = {"loss": loss["mean"], "loss_ci95": loss["ci95"], "episodes": loss["tasks"]}
    if "accuracy" in scores:
        summary = mean_and_ci95(scores["accuracy"])
        result = {"accuracy": summary["mean"], "ci95": summary["ci95"], **result}
    if "source" in scores:
        metric, name = ("accuracy", "accuracy") if "accuracy" in scores else ("loss", "loss")
        result["per_source"] = {}
        for source in np.unique(scores["source"]):
            summary = mean_and_ci95(scores[metric][scores["source"] == source])
            result["per_source"][int(source)] = {
                name: summary["mean"],
                "ci95" if name == "accuracy" else "loss_ci95": summary["ci95"],
                "episodes": summary["tasks"],
            }
    return result
