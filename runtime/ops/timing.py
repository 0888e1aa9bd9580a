"""Interleaved timing: every callable once per round, so the noise of a shared machine hits them alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def interleaved(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 20) -> dict[str, np.ndarray]:
    """Microseconds per call for each callable over `runs` rounds, after `warmup` untimed calls each.

    The order within a round is shuffled (seeded, so a rerun times the same sequence): an engine whose worker
    threads keep spinning after a call (OpenVINO's do) slows whatever runs next, and a fixed order would charge
    that to one neighbour."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times = {k: np.empty(runs) for k in names}
    orders = np.random.default_rng(0).permuted(np.tile(np.arange(len(names)), (runs, 1)), axis=1)
    for i, order in enumerate(orders):
        for j in order:
            k = names[j]
            fn = fns[k]
            t0 = time.perf_counter_ns()
            fn()
            times[k][i] = (time.perf_counter_ns() - t0) / 1e3
    return times
