"""A family's per-task returns grouped by task value, where a task is one number.

A mean over 40 tasks hides where a policy falls short; `benchmarks/meta_rl.py`
prints the groups beside it (velocities in quarters, directions one by one).
"""

from __future__ import annotations

import numpy as np


def by_value(tasks: np.ndarray, returns: np.ndarray, groups: int = 4) -> list[dict]:
    """Mean return after each step over tasks of similar value (1-D tasks): one group per value
    if there are at most `groups` (directions), else `groups` quantile groups (velocities)."""
    values = tasks[:, 0]
    distinct = np.unique(values)
    if len(distinct) <= groups:
        members = [np.flatnonzero(values == value) for value in distinct]
    else:
        members = np.array_split(np.argsort(values, kind="stable"), groups)
    return [
        {
            "task_from": float(values[member].min()),
            "task_to": float(values[member].max()),
            "tasks": len(member),
            "mean_returns": returns[member].mean(axis=0).tolist(),
        }
        for member in members
    ]
