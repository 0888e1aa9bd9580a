"""Probability calibration (numpy only): expected calibration error and temperature scaling.

Temperature scaling divides the logits by one number T fitted to minimise the negative log-likelihood on held-out
data (Guo et al. 2017). It changes no label (the arg max is the same) but makes "90 % confident" mean right about
90 % of the time, which an abstention threshold needs.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15
T_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, dtype: type | None = np.float64) -> np.ndarray:
    """Row-wise softmax, stable (max subtracted first), computed in `dtype`; None keeps the logits' own (the
    runtime stays in float32)."""
    z = np.asarray(logits, dtype=dtype)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Gap between confidence and accuracy, weighted over `bins` equal-width confidence bins (top-label ECE)."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() * abs(right[m].mean() - conf[m].mean())
    return float(total / max(len(y), 1))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T in `T_RANGE` minimising the NLL of softmax(logits / T): golden-section search on log T (the NLL is
    convex in 1/T, hence unimodal on this range)."""
    y = np.asarray(y, dtype=np.int64)
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, y, np.exp(a)), nll(logits, y, np.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, y, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, y, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def coverage(probs: np.ndarray, threshold: float | None) -> float:
    """Share of predictions whose top probability reaches `threshold` (answered, not abstained)."""
    if threshold is None:
        return 1.0
    return float((np.asarray(probs).max(axis=1) >= threshold).mean())
