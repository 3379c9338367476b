"""Checks of the counts users pass: one place, one wording of the error.

Every public constructor and function that takes a count (ways, steps, batch
sizes, episodes) refuses a bad one at once, with the name and the value, rather
than failing later inside a traced graph.
"""

from __future__ import annotations

import numbers
from typing import Any


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
