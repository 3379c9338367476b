"""Call latency as the export benchmarks report it: median and 90th percentile, in ms."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np


def timed_ms(call: Callable[[], object], repeats: int, warmup: int) -> dict[str, float]:
    """Runs `call` `warmup` times untimed, then `repeats` times timed.

    Returns:
        `{"median": ms, "p90": ms}`.
    """
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1000.0 * (time.perf_counter() - start))
    return {"median": statistics.median(times), "p90": float(np.percentile(times, 90))}
