"""Checks of the counts, step sizes and choices users pass: one place, one wording of the error.

Every public constructor and function that takes a count (ways, steps, batch
sizes, episodes), a step size or one of a few named options refuses a bad one
at once, with the name and the value, rather than failing later inside a
traced graph.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, TypeVar

Choice = TypeVar("Choice")


def check_integer(name: str, value: Any, minimum: int = 1, allow_none: bool = False) -> int | None:
    """Returns `value` as an int, or None where `allow_none` and it is None.

    Raises:
        ValueError: unless `value` is an integer >= `minimum` (numpy integers
            count; booleans do not: `True` is an int to Python, not a count).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise ValueError(f"Expected `{name}` to be {expected}. Received: {name}={value!r}")
    return int(value)


def check_learning_rate(name: str, value: Any) -> float:
    """Returns `value` as a float.

    Raises:
        ValueError: unless `value` is a finite real number >= 0 (booleans and
            strings are refused, numpy floats and integers count).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"Expected `{name}` to be a float. Received: {name}={value!r} "
            f"of type {type(value).__name__}"
        )
    value = float(value)
    if not value >= 0.0 or value == float("inf"):
        raise ValueError(f"Expected `{name}` to be a finite float >= 0. Received: {name}={value}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Choice]) -> Choice:
    """Returns `value` unless it is not one of `choices` (a sequence, or a dict's keys).

    Raises:
        ValueError: naming `name`, the choices and the value received.
    """
    choices = list(choices)  # a list compares by `==`: a dict's keys would need hashable values
    if value not in choices:
        raise ValueError(f"Expected `{name}` to be one of {choices}. Received: {name}={value!r}")
    return value
