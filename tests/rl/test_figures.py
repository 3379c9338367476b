import numpy as np
import pytest
import tensorflow as tf

from tfmeta.rl import figures
from tfmeta.rl.rollouts import Rollouts

pytest.importorskip("matplotlib")


def test_learning_curve_is_written_from_history_rows(tmp_path):
    history = [
        {"epoch": str(e), "return_before": str(-50 + e), "return_after": str(-20 + e)}
        for e in range(3)
    ]
    path = figures.plot_learning_curve(history, 10, tmp_path / "curve.png", title="navigation")
    assert path.endswith("curve.png") and (tmp_path / "curve.png").stat().st_size > 1000


def test_navigation_trajectories_are_drawn_for_each_step(tmp_path):
    steps = 6
    positions = np.cumsum(np.full((2, 3, steps, 2), 0.05, np.float32), axis=2)
    mask = np.ones((2, 3, steps), np.float32)
    mask[:, :, 4:] = 0.0
    rollouts = Rollouts(
        tf.constant(positions),
        tf.zeros([2, 3, steps, 2]),
        tf.zeros([2, 3, steps]),
        tf.constant(mask),
    )
    goals = np.array([[0.2, 0.2], [-0.3, 0.1]])
    figures.plot_navigation_adaptation([rollouts, rollouts], goals, tmp_path / "adaptation.png")
    assert (tmp_path / "adaptation.png").stat().st_size > 1000
