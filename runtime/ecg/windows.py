"""Cutting signals into model windows (numpy only, shared by training and the runtime), and the AAMI EC57
grouping of MIT-BIH beat symbols."""

from __future__ import annotations

import numpy as np

AAMI_CLASSES = ("N", "S", "V", "F", "Q")
AAMI_MAP = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("aAJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}


def beat_windows(sig: np.ndarray, centres: np.ndarray, before: int, after: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows [n, channels, before + after] from `before` samples ahead of each centre to `after` past it, for the
    centres whose window lies inside the signal, and the indices of those centres."""
    centres = np.asarray(centres, dtype=np.int64)
    inside = np.flatnonzero((centres - before >= 0) & (centres + after <= sig.shape[1]))
    if len(inside) == 0:
        return np.zeros((0, sig.shape[0], before + after), np.float32), inside
    idx = (centres[inside] - before)[:, None] + np.arange(before + after)[None, :]
    return sig[:, idx].transpose(1, 0, 2).astype(np.float32, copy=True), inside


def rhythm_windows(sig: np.ndarray, samples: np.ndarray, aux: list[str], length: int
                   ) -> tuple[np.ndarray, list[str], list[int]]:
    """Non-overlapping windows of `length` samples lying wholly inside one rhythm episode (an aux note such as
    "(AFIB" starts an episode), their rhythm names, and their start samples."""
    changes = [(int(s), a.strip("(\x00 ")) for s, a in zip(samples, aux, strict=True) if a and a.startswith("(")]
    xs, ys, starts = [], [], []
    ends = [s for s, _ in changes[1:]] + [sig.shape[1]] if changes else []
    for (start, rhythm), end in zip(changes, ends, strict=True):
        for w in range(max(start, 0), end - length + 1, length):
            xs.append(sig[:, w : w + length])
            ys.append(rhythm)
            starts.append(w)
    if not xs:
        return np.zeros((0, sig.shape[0], length), np.float32), [], []
    return np.stack(xs).astype(np.float32), ys, starts
