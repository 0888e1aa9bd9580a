"""What a beat model is fed besides the beat: rhythm (RR intervals and their ratios) and the patient's own usual
beat (the median of the previous beats), computed from beat positions by one `ContextTracker`, beat after beat, so
training, evaluation, a whole record at the bedside and a stream all compute exactly the same inputs (numpy only).

Missing intervals (the first beat has no previous one, the last no next one, a short history no average) are
filled with `DEFAULT_RR_S` (0.8 s, 75 per minute); the first beat's template is the beat itself. Windows reaching
past a recording's ends are padded with the edge sample and marked, so no beat is left out. A beat more than
`RESTART_S` after the previous one follows a gap in the signal (leads off, an episode left out of the reference),
not a heartbeat interval: it starts the context afresh, as the first beat of a recording does. Without this, one
20-minute gap made every beat of the next five minutes look premature (`long_rr` held the gap).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edgemed.core.spec import MORPHOLOGY_FEATURES, BeatContext, Window
from edgemed.runtime.ecg.morphology import MorphologyTracker

DEFAULT_RR_S = 0.8
MIN_RR_S = 0.15  # shorter intervals are taken as this (two positions on one beat; no heart beats faster)
RESTART_S = 10.0  # longer intervals are gaps in the signal (no heart pauses this long and beats on)


@dataclass
class BeatInputs:
    positions: np.ndarray  # [n] beat positions (samples) after alignment to the R peak
    windows: np.ndarray  # [n, leads, samples]
    template: np.ndarray | None  # [n, leads, samples]: median of the previous beats' windows
    rr: np.ndarray  # [n, features] float32
    padded: np.ndarray  # [n] bool: the window reached past the recording and was padded

    def __len__(self) -> int:
        return len(self.positions)

    def context(self) -> dict[str, np.ndarray]:
        """Context arrays by source name (see TensorSpec.source)."""
        out = {"rr_features": self.rr}
        if self.template is not None:
            out["beat_template"] = self.template
        return out


def locate_r(signal: np.ndarray, positions: np.ndarray, fs: float, before_s: float, after_s: float) -> np.ndarray:
    """The R peak near each position: the sample of largest deviation from the local median of `signal` (one lead)
    in [position - before_s, position + after_s]. Used for detections (the window before the integrated peak) and
    for reference annotations (a short window around them), so both are aligned the same way."""
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    out = np.empty(len(positions), dtype=np.int64)
    b, a = int(round(before_s * fs)), int(round(after_s * fs))
    for k, p in enumerate(np.asarray(positions, dtype=np.int64)):
        lo, hi = max(int(p) - b, 0), min(int(p) + a + 1, len(x))
        if hi <= lo:
            out[k] = min(max(int(p), 0), len(x) - 1)
            continue
        seg = x[lo:hi]
        out[k] = lo + int(np.argmax(np.abs(seg - np.median(seg))))
    return out


def padded_windows(signal: np.ndarray, centres: np.ndarray, before: int, after: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows [n, leads, before + after] around each centre, edge-padded where they pass the ends, and which were."""
    sig = np.asarray(signal, dtype=np.float32)
    n = sig.shape[1]
    centres = np.asarray(centres, dtype=np.int64)
    idx = (centres - before)[:, None] + np.arange(before + after)[None, :]
    padded = (idx[:, 0] < 0) | (idx[:, -1] >= n)
    return sig[:, np.clip(idx, 0, n - 1)].transpose(1, 0, 2).copy(), padded


class ContextTracker:
    """Rhythm features and template of each beat from the beats before it (and the next one, for a non-causal
    context). Feed beats in time order with `next_inputs`."""

    def __init__(self, fs: float, ctx: BeatContext, r_index: int = 0) -> None:
        """`r_index`: where the R peak lies in each window (the window's samples before it)."""
        self.fs, self.ctx, self._r_index = fs, ctx, r_index
        self._restart()

    def _restart(self) -> None:
        """Forget every beat before: the next one is treated as a recording's first."""
        fs, ctx = self.fs, self.ctx
        wanted = set(ctx.features) & set(MORPHOLOGY_FEATURES)
        self._morphology = MorphologyTracker(fs, self._r_index) if wanted else None
        self._last: int | None = None
        self._pre: deque[float] = deque(maxlen=ctx.local_beats)
        self._long: deque[tuple[int, float]] = deque()
        self._windows: deque[np.ndarray] = deque(maxlen=max(ctx.template_beats, 1))

    def next_inputs(self, position: int, window: np.ndarray, next_position: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(RR feature vector, template) of the beat at `position`, then remember it."""
        fs, ctx = self.fs, self.ctx
        if self._last is not None and position - self._last > RESTART_S * fs:
            self._restart()
        pre = max((position - self._last) / fs, MIN_RR_S) if self._last is not None else None
        if next_position is not None and next_position - position > RESTART_S * fs:
            next_position = None  # the last beat before a gap, as a recording's last beat
        post = max((next_position - position) / fs, MIN_RR_S) if next_position is not None else None
        local = float(np.mean(self._pre)) if self._pre else None
        median = float(np.median(self._pre)) if self._pre else None
        spread = float(np.std(self._pre)) / local if local and len(self._pre) > 1 else 0.0
        horizon = position - ctx.long_window_s * fs
        while self._long and self._long[0][0] < horizon:
            self._long.popleft()
        long = float(np.mean([r for _, r in self._long])) if self._long else None
        pre_f = pre if pre is not None else (local or long or DEFAULT_RR_S)
        post_f = post if post is not None else (local or pre_f)
        local_f = local if local is not None else pre_f
        long_f = long if long is not None else local_f
        values = {"pre_rr": pre_f, "post_rr": post_f, "local_rr": local_f, "long_rr": long_f,
                  "pre_local": pre_f / local_f, "pre_long": pre_f / long_f, "post_local": post_f / local_f,
                  "post_pre": post_f / pre_f, "local_long": local_f / long_f,
                  "pre_median": pre_f / (median if median is not None else pre_f), "local_cv": spread,
                  "pre_prev": pre_f / (self._pre[-1] if self._pre else pre_f)}
        template = None
        if ctx.template_beats:
            template = (np.median(np.stack(self._windows), axis=0).astype(np.float32) if self._windows
                        else window.astype(np.float32))
        if self._morphology is not None:
            values.update(self._morphology.features(window[0], None if template is None else template[0],
                                                    values["pre_local"]))
        rr = np.array([values[f] for f in ctx.features], dtype=np.float32)
        if pre is not None:
            self._pre.append(pre)
            self._long.append((position, pre))
        self._windows.append(window)
        self._last = position
        return rr, template


def beat_inputs(signal: np.ndarray, beats: np.ndarray, fs: float, window: Window, ctx: BeatContext) -> BeatInputs:
    """Everything a beat model takes, for every beat of a recording [leads, samples] (beats: sample positions)."""
    beats = np.sort(np.asarray(beats, dtype=np.int64))
    align = int(round(ctx.align_s * fs))
    positions = locate_r(np.asarray(signal)[0], beats, fs, ctx.align_s, ctx.align_s) if align else beats
    before, after = window.offsets(fs)
    windows, padded = padded_windows(signal, positions, before, after)
    tracker = ContextTracker(fs, ctx, before)
    rr = np.zeros((len(positions), len(ctx.features)), np.float32)
    template = np.zeros_like(windows) if ctx.template_beats else None
    for i, p in enumerate(positions):
        nxt = int(positions[i + 1]) if i + 1 < len(positions) and not ctx.causal else None
        rr[i], t = tracker.next_inputs(int(p), windows[i], nxt)
        if template is not None:
            template[i] = t
    return BeatInputs(positions, windows, template, rr, padded)
