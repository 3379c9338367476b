"""Figures of a training run, written as PNG files (needs the `plot` extra)."""

from __future__ import annotations

import os
import numpy as np
import tensorflow as tf

from tfmeta import adaptation, query_statistics
from tfmeta.data import sinusoid
from tfmeta.learners.gradient_learner import GradientLearner


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "Plotting needs matplotlib: `pip install 'tfmeta[plot]'`."
        ) from error
    return plt


def evaluation_trajectory(
    learner: GradientLearner, support_x: tf.Tensor, support_y: tf.Tensor
) -> list[tuple[adaptation.Weights, adaptation.Weights]]:
    """`(params, state)` before and after each step of the learner's evaluation inner loop.

    The steps use the learner's evaluation learning rates (per parameter for
    Meta-SGD, per step for MAML++) and adapt the weights it adapts (the head
    only for ANIL); the last entry is what `learner.adapt` returns.
    """
    params, state = adaptation.initial_weights(learner.model)
    trajectory = [(params, state)]
    for step_rates in learner.inner_learning_rates(training=False):
        with query_statistics.support_passes(learner.model, False, learner.query_statistics):
            params, state = adaptation.gradient_step(
                learner.model,
                learner.task_loss,
                params,
                state,
                support_x,
                support_y,
                learning_rates=step_rates,
                adapted=learner.adapted_indices,
                training=False,
            )
        trajectory.append((params, state))
    return trajectory


def plot_sinusoid_adaptation(
    learner: GradientLearner,
    episodes: dict[str, tf.Tensor],
    path: str | os.PathLike,
    num_tasks: int = 3,
) -> str:
    """Draws adapted curves for a few sinusoid tasks, as in Finn et al. 2017, Figure 2.

    Each panel shows the true curve, the support points, and the prediction
    of the meta-learned initialization and after 1 and `eval_inner_steps`
    steps of the learner's own evaluation inner loop (its learning rates, per
    parameter for Meta-SGD, and its adapted weights: the head only for ANIL).

    Args:
        learner: a compiled gradient learner whose model maps `[n, 1]` inputs
            to `[n, 1]`.
        episodes: a sinusoid meta-batch (with `amplitude` and `phase`).
        path: the PNG file to write.
        num_tasks: tasks to draw, one panel each (at most the tasks in
            `episodes`).

    Returns:
        The path written.
    """
    plt = _pyplot()
    num_tasks = min(num_tasks, int(episodes["support_x"].shape[0]))
    x = np.linspace(-5.0, 5.0, 200, dtype=np.float32)[:, None]
    steps = learner.steps(training=False)
    drawn_steps = sorted({0, min(1, steps), steps})
    figure, axes = plt.subplots(1, num_tasks, figsize=(4.5 * num_tasks, 3.5), squeeze=False)
    for task, axis in enumerate(axes[0]):
        support_x = episodes["support_x"][task]
        support_y = episodes["support_y"][task]
        amplitude = float(episodes[sinusoid.AMPLITUDE][task])
        phase = float(episodes[sinusoid.PHASE][task])
        axis.plot(x, amplitude * np.sin(x - phase), color="black", label="ground truth")
        trajectory = evaluation_trajectory(learner, support_x, support_y)
        for step in drawn_steps:
            params, state = trajectory[step]
            prediction, _ = query_statistics.predict_queries(
                learner.model, params, state, support_x, x,
                mode=learner.query_statistics, training=False,
            )
            label = "meta-learned init" if step == 0 else f"after {step} step(s)"
            axis.plot(x, np.asarray(prediction), linestyle="--", label=label)
        axis.scatter(support_x, support_y, color="red", zorder=3, label="support set")
        axis.set_title(f"A={amplitude:.2f}, phase={phase:.2f}")
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)


def plot_history(history: dict[str, list[float]], path: str | os.PathLike) -> str:
    """Plots each metric of a Keras `History.history` dict against the epoch."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, values in history.items():
        axis.plot(np.arange(1, len(values) + 1), values, label=name)
    axis.set_xlabel("epoch")
    axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)
