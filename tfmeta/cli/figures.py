"""The PNG figures of a run directory (need the `plot` extra: matplotlib).

- `learning_curve.png`: every column of `history.csv` against the epoch.
- `adaptation.png` (sinusoid): adapted curves of three held-out tasks.
- `accuracy.png` (classification): per-task accuracies, their mean and 95% CI.
"""

from __future__ import annotations

import pathlib

import numpy as np

from tfmeta import evaluation, plots

# Learners that adapt by gradient steps, whose inner loop `plots.plot_sinusoid_adaptation` draws.
_GRADIENT_ALGORITHMS = ("maml", "fomaml", "metasgd", "anil", "reptile")


def _read_history(path: pathlib.Path) -> dict[str, list[float]]:
    """The columns of a Keras `CSVLogger` file, without the epoch and the empty (`NA`) ones."""
    rows = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return {
        name: rows[name].tolist()
        for name in rows.dtype.names
        if name != "epoch" and not np.isnan(rows[name]).all()
    }


def write_figures(
    directory: pathlib.Path,
    algorithm: str,
    learner=None,
    sinusoid_batch: dict | None = None,
    accuracies: np.ndarray | None = None,
    title: str = "",
    prefix: str = "",
    history: pathlib.Path | None = None,
) -> list[str]:
    """Writes the figures that apply into `directory`; returns their file names.

    Args:
        prefix: put before each file name (`tfmeta evaluate` names its own).
        history: the run's `history.csv`, for `learning_curve.png` (None: no curve).

    Raises:
        ImportError: without matplotlib (naming the `plot` extra).
    """
    written = []
    if history is not None and history.is_file() and history.stat().st_size:
        plots.plot_history(_read_history(history), directory / f"{prefix}learning_curve.png")
        written.append(f"{prefix}learning_curve.png")
    if sinusoid_batch is not None and algorithm in _GRADIENT_ALGORITHMS:
        path = directory / f"{prefix}adaptation.png"
        plots.plot_sinusoid_adaptation(learner, sinusoid_batch, path)
        written.append(f"{prefix}adaptation.png")
    if accuracies is not None:
        plot_accuracy(accuracies, directory / f"{prefix}accuracy.png", title)
        written.append(f"{prefix}accuracy.png")
    return written


def plot_accuracy(accuracies: np.ndarray, path: pathlib.Path, title: str) -> None:
    """A histogram of per-task accuracies with their mean and its 95% confidence interval."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("Plotting needs matplotlib: `pip install 'tfmeta[plot]'`.") from error
    summary = evaluation.mean_and_ci95(accuracies)
    mean, ci95 = summary["mean"], summary["ci95"]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.hist(100 * accuracies, bins=np.linspace(0, 100, 21), color="lightsteelblue")
    axis.axvspan(
        100 * (mean - ci95),
        100 * (mean + ci95),
        color="tab:red",
        alpha=0.3,
        label="95% CI of the mean",
    )
    axis.axvline(100 * mean, color="tab:red", label=f"mean {100 * mean:.2f}% +/- {100 * ci95:.2f}%")
    axis.set_xlabel("query accuracy after adaptation (%)")
    axis.set_ylabel(f"tasks (of {summary['tasks']})")
    axis.set_title(title)
    axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
