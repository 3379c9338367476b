"""Central finite differences of a scalar function of Keras variables (float64 checks)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def gradients(loss: Callable[[], float], variables, eps: float = 1e-6) -> list[np.ndarray]:
    """`d loss / d variable` for each variable, by central differences of step `eps`.

    Each variable is perturbed in place, one element at a time, and restored.
    """
    numeric = []
    for variable in variables:
        original = variable.numpy()
        grad = np.zeros_like(original)
        for index in np.ndindex(original.shape):
            for sign in (1, -1):
                perturbed = original.copy()
                perturbed[index] += sign * eps
                variable.assign(perturbed)
                grad[index] += sign * loss() / (2 * eps)
            variable.assign(original)
        numeric.append(grad)
    return numeric
