"""Interleaved timing: every callable once per round, so the noise of a shared machine hits them alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def interleaved(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 20) -> dict[str, np.ndarray]:
    """Microseconds per call for each callable over `runs` rounds, after `warmup` untimed calls each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: np.empty(runs) for k in fns}
    for i in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter_ns()
            fn()
            times[k][i] = (time.perf_counter_ns() - t0) / 1e3
    return times
