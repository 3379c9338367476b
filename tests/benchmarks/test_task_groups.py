"""benchmarks/task_groups.py: the per-task returns meta_rl.py prints by task value."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import task_groups  # noqa: E402


def test_velocities_fall_into_quarters_of_equal_size_in_order():
    velocities = np.array([[1.9], [0.1], [1.2], [0.5], [0.3], [1.5], [0.9], [1.7]])
    returns = -np.abs(velocities) * np.array([[100.0, 50.0]])  # [tasks, steps]
    groups = task_groups.by_value(velocities, returns)
    assert [(g["task_from"], g["task_to"], g["tasks"]) for g in groups] == [
        (0.1, 0.3, 2), (0.5, 0.9, 2), (1.2, 1.5, 2), (1.7, 1.9, 2)
    ]
    np.testing.assert_allclose(groups[3]["mean_returns"], [-180.0, -90.0])


def test_directions_are_grouped_by_value():
    directions = np.array([[1.0], [-1.0], [1.0], [1.0], [-1.0]])
    returns = np.array([[10.0], [-4.0], [20.0], [30.0], [-6.0]])
    groups = task_groups.by_value(directions, returns)
    assert [(g["task_from"], g["tasks"], g["mean_returns"]) for g in groups] == [
        (-1.0, 2, [-5.0]), (1.0, 3, [20.0])
    ]
