"""Figures of a meta-RL run as PNG files (needs matplotlib: the `plot` extra)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from tfmeta.rl.rollouts import Rollouts


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("Plotting needs matplotlib: `pip install 'tfmeta[plot]'`.") from error
    return plt


def plot_learning_curve(
    history: Sequence[dict],
    iterations_per_epoch: int,
    path: str | os.PathLike,
    title: str = "",
) -> str:
    """Mean return on the training tasks before and after adaptation, against meta-iteration.

    Args:
        history: the rows of a run's `history.csv` (one per epoch, with
            `epoch`, `return_before` and `return_after`), e.g.
            `tfmeta.rl.training.train(...)["history"]`.
        iterations_per_epoch: meta-iterations per epoch of that run.
        path: where to write the PNG.
        title: the figure's title.

    Returns:
        `path`, as a string.
    """
    plt = _pyplot()
    iterations = [(int(row["epoch"]) + 1) * iterations_per_epoch for row in history]
    figure, axes = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("return_before", "before adaptation"),
        ("return_after", "after adaptation"),
    ):
        axes.plot(iterations, [float(row[key]) for row in history], label=label)
    axes.set_xlabel("meta-iteration")
    axes.set_ylabel("mean return (training tasks)")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return os.fspath(path)


def plot_navigation_adaptation(
    samplings: Sequence[Rollouts],
    goals: np.ndarray,
    path: str | os.PathLike,
    num_tasks: int = 3,
    trajectories: int = 5,
) -> str:
    """2D-navigation trajectories before and after each adaptation step (Finn et al., Fig. 4).

    Args:
        samplings: `PolicyMAML.adaptation_rollouts` of navigation tasks.
        goals: `[tasks, 2]`, the tasks' goals.
        path: where to write the PNG.
        num_tasks: tasks drawn, one panel each.
        trajectories: trajectories drawn per step and task.

    Returns:
        `path`, as a string.
    """
    plt = _pyplot()
    num_tasks = min(num_tasks, len(goals))
    figure, panels = plt.subplots(1, num_tasks, figsize=(4 * num_tasks, 4), squeeze=False)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(samplings)))
    for task, axes in enumerate(panels[0]):
        for step, (rollouts, color) in enumerate(zip(samplings, colors)):
            label = "pre-update" if step == 0 else f"{step} step{'s' if step > 1 else ''}"
            observations = np.asarray(rollouts.observations[task])
            mask = np.asarray(rollouts.mask[task])
            for index in range(min(trajectories, len(observations))):
                points = observations[index][mask[index] > 0]
                axes.plot(
                    points[:, 0],
                    points[:, 1],
                    color=color,
                    alpha=0.7,
                    lw=1,
                    label=label if index == 0 else None,
                )
        axes.scatter(*goals[task], marker="*", s=200, color="red", label="goal", zorder=3)
        axes.set_aspect("equal")
        axes.set_title(f"goal ({goals[task][0]:.2f}, {goals[task][1]:.2f})")
    panels[0][0].legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return os.fspath(path)
