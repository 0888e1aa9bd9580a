"""An exponential average over a stream, in numpy alone: the running scales of the QRS detector
(`edgemed.runtime.ecg.slope`) run on every sample of every lead, and a first-order recursion needs neither a Python
loop per sample nor the block matrix product of a general IIR filter (eight times slower for this one)."""

from __future__ import annotations

import math

import numpy as np

BLOCK = 256  # samples per block


def ema(x: np.ndarray, alpha: float, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exponential average along the last axis of `x` [channels, samples]: y[k] = alpha * x[k] + (1 - alpha) *
    y[k - 1], from y[-1] = `last` [channels]; returns (y, its last column) for the next chunk.

    Within a block the response to the block's own samples is a cumulative sum of x weighted by (1 - alpha)**-j
    (blocks short enough that the weights stay under 1e6, so precision holds), and the states the blocks start from
    follow the same recursion one level up, with (1 - alpha)**L for 1 - alpha: a few operations per sample."""
    channels, n = x.shape
    last = np.asarray(last, dtype=np.float64)
    if n == 0:
        return np.zeros((channels, 0)), last
    decay = 1.0 - alpha
    if decay <= 0.0 or decay >= 1.0:  # no memory, or nothing but memory
        y = np.array(x, dtype=np.float64) if decay <= 0.0 else np.repeat(last[:, None], n, axis=1)
        return y, y[:, -1].copy()
    L = min(BLOCK, n, 1 + int(math.log(1e6) / -math.log(decay)))
    if L == 1:  # a decay under 1e-6 per sample: nothing to gain from blocks
        y, state = np.empty((channels, n)), last
        for k in range(n):
            y[:, k] = state = alpha * x[:, k] + decay * state
        return y, y[:, -1].copy()
    blocks = -(-n // L)
    padded = np.zeros((channels, blocks * L))
    padded[:, :n] = x
    j = np.arange(L)
    forced = alpha * decay**j * np.cumsum(padded.reshape(channels, blocks, L) * decay**-j, axis=2)
    starts = last[:, None]
    if blocks > 1:
        block_decay = decay**L
        carried, _ = ema(forced[:, :-1, -1] / (1.0 - block_decay), 1.0 - block_decay, last)
        starts = np.concatenate([starts, carried], axis=1)
    y = (forced + starts[:, :, None] * decay ** (j + 1)).reshape(channels, blocks * L)[:, :n]
    return y, y[:, -1].copy()
