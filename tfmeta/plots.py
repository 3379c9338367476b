"""Figures of a training run, written as PNG files (needs the `plot` extra)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfmeta import adaptation
from tfmeta.data import sinusoid
from tfmeta.learners.maml import MAML


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


def plot_sinusoid_adaptation(
    learner: MAML,
    episodes: dict[str, tf.Tensor],
    path: str | os.PathLike,
    steps: Sequence[int] = (0, 1, 10),
    num_tasks: int = 3,
) -> str:
    """Draws adapted curves for a few sinusoid tasks, as in Finn et al. 2017, Figure 2.

    Args:
        learner: a compiled learner whose model maps `[n, 1]` inputs to `[n, 1]`.
        episodes: a sinusoid meta-batch (with `amplitude` and `phase`).
        path: the PNG file to write.
        steps: inner steps after which to draw the prediction (0: the
            meta-learned initialization).
        num_tasks: tasks to draw, one panel each.

    Returns:
        The path written.
    """
    plt = _pyplot()
    x = np.linspace(-5.0, 5.0, 200, dtype=np.float32)[:, None]
    figure, axes = plt.subplots(1, num_tasks, figsize=(4.5 * num_tasks, 3.5), squeeze=False)
    for task, axis in enumerate(axes[0]):
        support_x = episodes["support_x"][task]
        support_y = episodes["support_y"][task]
        amplitude = float(episodes[sinusoid.AMPLITUDE][task])
        phase = float(episodes[sinusoid.PHASE][task])
        axis.plot(x, amplitude * np.sin(x - phase), color="black", label="ground truth")
        for num_steps in steps:
            params, state = adaptation.initial_weights(learner.model)
            params, state = adaptation.adapt(
                learner.model,
                learner.task_loss,
                params,
                state,
                support_x,
                support_y,
                learning_rates=adaptation.constant_learning_rates(
                    learner.eval_inner_learning_rate, num_steps, len(params)
                ),
            )
            prediction, _ = adaptation.forward(
                learner.model, params, state, x, training=learner.transductive
            )
            label = "meta-learned init" if num_steps == 0 else f"after {num_steps} step(s)"
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
