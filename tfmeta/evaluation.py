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
            default is the learner's task loss. A metric may return a tuple
            of floats; the result then has one column per entry.

    Returns:
        One value (or row of values) per task, in dataset order.
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


def evaluate_episodes(
    learner: MetaLearner, episodes: tf.data.Dataset, num_episodes: int = 600
) -> dict[str, float]:
    """Few-shot classification accuracy over `num_episodes` tasks, with its 95% CI.

    The evaluation convention of the literature (600 test episodes, mean
    accuracy +- `1.96 * std / sqrt(n)`): each task adapts with the learner's
    evaluation inner loop (`eval_inner_steps`, ...) and is scored on its
    query set.

    Args:
        learner: a compiled learner whose predictions are class scores
            (logits or probabilities, classes on the last axis).
        episodes: a dataset of meta-batches with a static number of tasks,
            e.g. `FewShotEpisodes.episodes(..., meta_batch_size=20,
            num_episodes=600, seed=1)`.
        num_episodes: tasks to evaluate (the first ones of `episodes`).

    Returns:
        `{"accuracy", "ci95", "loss", "loss_ci95", "episodes"}`: mean query
        accuracy and query loss (the compiled loss) over the tasks, and the
        half-widths of their 95% confidence intervals.

    Example:

    ```python
    test = sources["test"].episodes(ways=5, shots=1, queries=15, meta_batch_size=20,
                                    num_episodes=600, seed=1)
    tfmeta.evaluation.evaluate_episodes(learner, test)  # {"accuracy": 0.97, "ci95": 0.004, ...}
    ```
    """
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 1:
        raise ValueError(
            "Expected `num_episodes` to be an integer >= 1. "
            f"Received: num_episodes={num_episodes!r}"
        )
    tasks_per_batch = episodes.element_spec["support_x"].shape[0]
    if tasks_per_batch is None:
        raise ValueError(
            "Expected meta-batches with a static number of tasks (batch with "
            f"drop_remainder=True). Received: element_spec={episodes.element_spec}"
        )
    batches = episodes.take(-(-num_episodes // tasks_per_batch))
    values = per_task_values(
        learner,
        batches,
        metric=lambda targets, predictions: (
            float(learner.task_loss(targets, predictions)),
            accuracy(targets, predictions),
        ),
    )
    if len(values) < num_episodes:
        raise ValueError(
            f"Expected at least num_episodes={num_episodes} tasks in `episodes`. "
            f"Received: {len(values)}"
        )
    losses, accuracies = values[:num_episodes, 0], values[:num_episodes, 1]
    loss, acc = mean_and_ci95(losses), mean_and_ci95(accuracies)
    return {
        "accuracy": acc["mean"],
        "ci95": acc["ci95"],
        "loss": loss["mean"],
        "loss_ci95": loss["ci95"],
        "episodes": num_episodes,
    }
