"""Beat-by-beat comparison by the rules of ANSI/AAMI EC57 (numpy only).

A detected beat matches a reference beat when it lies within `window_s` (150 ms) of it; each reference beat matches
at most one detection and each detection at most one reference beat, nearest first. Unmatched reference beats are
missed (false negatives, for detection and for their class); unmatched detections are extra (false positives).
Ventricular flutter and fibrillation episodes (between `[` and `]` annotations, and rhythm episodes `(VFL` / `(VF`)
are left out of the comparison, as EC57 prescribes: reference beats and detections inside them are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgemed.core.readers.wfdb import Annotations
from edgemed.runtime.ecg.windows import AAMI_MAP

WINDOW_S = 0.15
VF_RHYTHMS = ("(VFL", "(VF")


@dataclass
class Matching:
    pairs: np.ndarray  # [n, 2]: (reference index, detection index)
    missed: np.ndarray  # reference indices without a detection
    extra: np.ndarray  # detection indices without a reference beat

    @property
    def tp(self) -> int:
        return len(self.pairs)

    @property
    def fn(self) -> int:
        return len(self.missed)

    @property
    def fp(self) -> int:
        return len(self.extra)


def match(reference: np.ndarray, detected: np.ndarray, fs: float, window_s: float = WINDOW_S) -> Matching:
    """Pair reference and detected sample positions within `window_s`, closest pairs first."""
    ref = np.asarray(reference, dtype=np.int64)
    det = np.asarray(detected, dtype=np.int64)
    tol = window_s * fs
    candidates = []
    if len(ref) and len(det):
        order = np.argsort(det, kind="stable")
        sorted_det = det[order]
        lo = np.searchsorted(sorted_det, ref - tol, side="left")
        hi = np.searchsorted(sorted_det, ref + tol, side="right")
        for i in np.flatnonzero(hi > lo):
            for j in range(lo[i], hi[i]):
                candidates.append((abs(int(sorted_det[j]) - int(ref[i])), int(i), int(order[j])))
    candidates.sort()
    used_ref, used_det, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_ref and j not in used_det:
            used_ref.add(i)
            used_det.add(j)
            pairs.append((i, j))
    pairs.sort()
    return Matching(np.array(pairs, dtype=np.int64).reshape(-1, 2),
                    np.array(sorted(set(range(len(ref))) - used_ref), dtype=np.int64),
                    np.array(sorted(set(range(len(det))) - used_det), dtype=np.int64))


def excluded_intervals(ann: Annotations, n_samples: int) -> list[tuple[int, int]]:
    """Sample intervals EC57 leaves out: ventricular flutter/fibrillation, by `[ ... ]` marks or VF rhythms."""
    intervals = []
    start = None
    for s, sym in zip(ann.sample, ann.symbol, strict=True):
        if sym == "[":
            start = int(s)
        elif sym == "]" and start is not None:
            intervals.append((start, int(s)))
            start = None
    if start is not None:
        intervals.append((start, n_samples))
    rhythm_start, in_vf = None, False
    for s, aux in zip(ann.sample, ann.aux, strict=True):
        if not aux.startswith("("):
            continue
        if in_vf:
            intervals.append((rhythm_start, int(s)))
        in_vf = aux.rstrip("\x00") in VF_RHYTHMS
        rhythm_start = int(s)
    if in_vf:
        intervals.append((rhythm_start, n_samples))
    return sorted(intervals)


def outside(samples: np.ndarray, intervals: list[tuple[int, int]]) -> np.ndarray:
    """Boolean mask of samples lying outside every interval."""
    keep = np.ones(len(samples), dtype=bool)
    for lo, hi in intervals:
        keep &= ~((samples >= lo) & (samples <= hi))
    return keep


def reference_beats(ann: Annotations) -> tuple[np.ndarray, list[str]]:
    """Positions and AAMI classes of the annotated beats (non-beat annotations left out)."""
    idx = [i for i, s in enumerate(ann.symbol) if s in AAMI_MAP]
    return ann.sample[idx], [AAMI_MAP[ann.symbol[i]] for i in idx]
