"""Per-task evaluation: the few-shot convention of a mean over episodes with a 95% CI."""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

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
            default is the learner's task loss.

    Returns:
        One value per task, in dataset order.
    """
    if metric is None:
        metric = lambda targets, predictions: float(learner.task_loss(targets, predictions))
    values = []
    for batch in episodes:
        predictions = learner.predict_on_batch(batch)
        for targets, task_predictions in zip(batch["query_y"].numpy(), predictions):
            values.append(metric(targets, task_predictions))
    return np.asarray(values)


def accuracy(targets: np.ndarray, logits: np.ndarray) -> float:
    """Share of query examples whose arg-max logit is the label."""
    return float(np.mean(np.argmax(logits, axis=-1) == targets))
