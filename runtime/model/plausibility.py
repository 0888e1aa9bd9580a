"""Is this input something the model was meant to see? Marks per prediction, refuses the absurd.

The spec's `input_range` records each channel's 0.1 and 99.9 percentiles on the training data. Per sample and
channel the runtime takes the minimum and maximum (the same two reductions also prove every value finite), and:
- refuses values more than `REFUSE_SPANS` training spans outside the range (a signal scaled by 1e30, or in the
  wrong units by orders of magnitude: no model output on it can mean anything);
- marks `out_of_range` a sample with a channel more than `MARK_SPANS` spans outside it;
- for waveforms (`checks` with "flat"), marks `flat_line` a channel whose peak-to-peak is under
  `FLAT_FRACTION` of the training span (a lead off, a disconnected sensor);
- for waveforms (`checks` with "clipping"), marks `clipped` a channel with at least `CLIP_MIN_SAMPLES` (or
  `CLIP_FRACTION` of its samples) sitting exactly at its own minimum or maximum (an amplifier at its rail).
"""

from __future__ import annotations

import numpy as np

from edgemed.core.errors import InputError
from edgemed.core.spec import InputRange

OUT_OF_RANGE, FLAT, CLIPPED = "out_of_range", "flat_line", "clipped"
MARK_SPANS = 2.0
REFUSE_SPANS = 1000.0
FLAT_FRACTION = 1e-3
CLIP_MIN_SAMPLES = 8
CLIP_FRACTION = 0.02


def _per_channel(arr: np.ndarray, axis: int) -> np.ndarray:
    """The array as [batch, values, channels]: a view when the layout allows."""
    moved = np.moveaxis(arr, axis, -1) if axis != arr.ndim - 1 else arr
    return moved.reshape(arr.shape[0], -1, arr.shape[axis])


def extremes(arr: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per sample and channel minimum and maximum ([batch, channels]); one column when `axis` is None."""
    if axis is None or arr.ndim < 2 or axis >= arr.ndim:
        flat = arr.reshape(arr.shape[0] if arr.ndim else 1, -1)
        return flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    reduce = tuple(a for a in range(1, arr.ndim) if a != axis)
    return arr.min(axis=reduce), arr.max(axis=reduce)


def _limits(rng: InputRange) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the lowest and highest values accepted: `REFUSE_SPANS` spans outside the training range
    (computed once per range: this runs on every prediction)."""
    cached = rng.__dict__.get("_refuse_limits")
    if cached is None:
        low, high = np.asarray(rng.low), np.asarray(rng.high)
        span = np.maximum(high - low, 1e-12)
        cached = rng.__dict__["_refuse_limits"] = (low - REFUSE_SPANS * span, high + REFUSE_SPANS * span)
    return cached


def check_magnitude(name: str, mins: np.ndarray, maxs: np.ndarray, rng: InputRange | None) -> None:
    """InputError for NaN/Inf, and for values absurdly far outside the training range. The common case (all
    fine) costs two comparisons: NaN fails them too, and only a failure works out what was wrong."""
    if rng is not None and mins.shape[1] == len(rng.low):
        lo, hi = _limits(rng)
        if ((mins >= lo) & (maxs <= hi)).all():
            return
    elif np.isfinite(mins).all() and np.isfinite(maxs).all():
        return
    finite = np.isfinite(mins) & np.isfinite(maxs)
    if not finite.all():
        b, c = (int(i) for i in np.argwhere(~finite)[0])
        raise InputError(f"input {name!r}: NaN/Inf value(s), the first in sample {b}, channel {c}; impute or drop "
                         "them before inference")
    low, high = np.asarray(rng.low), np.asarray(rng.high)
    span = np.maximum(high - low, 1e-12)
    far = np.maximum((low - mins) / span, (maxs - high) / span)
    if far.max() > REFUSE_SPANS:
        b, c = np.unravel_index(int(far.argmax()), far.shape)
        raise InputError(
            f"input {name!r}: sample {b}, channel {c} spans {mins[b, c]:.4g}..{maxs[b, c]:.4g}, more than "
            f"{REFUSE_SPANS:g} times the training data's range ({low[c]:.4g}..{high[c]:.4g}) away from it; "
            "check the units and scaling of the signal"
        )


def clipped_channels(arr: np.ndarray, axis: int, mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    """Per sample and channel ([batch, channels], bool): at least `CLIP_MIN_SAMPLES` (or `CLIP_FRACTION` of its
    values) sit exactly at the channel's own minimum or maximum, and the channel is not flat. Every channel has at
    least one value at each extreme, so fewer than threshold + channels - 1 equalities over the whole array (two
    fast counts, the usual case) prove no channel clipped; only otherwise are they counted per channel."""
    shape = [1] * arr.ndim
    shape[0], shape[axis] = arr.shape[0], arr.shape[axis]
    top, bottom = maxs.reshape(shape), mins.reshape(shape)
    threshold = max(CLIP_MIN_SAMPLES, CLIP_FRACTION * (arr.size // max(mins.size, 1)))
    bound = threshold + mins.size - 1
    if np.count_nonzero(arr == top) < bound and np.count_nonzero(arr == bottom) < bound:
        return np.zeros(mins.shape, bool)
    reduce = tuple(a for a in range(1, arr.ndim) if a != axis)
    counts = np.maximum((arr == top).sum(axis=reduce, dtype=np.int64), (arr == bottom).sum(axis=reduce, dtype=np.int64))
    return (counts >= threshold) & (maxs > mins)


def assess(mins: np.ndarray, maxs: np.ndarray, rng: InputRange | None,
           clipped: np.ndarray | None = None) -> list[tuple[str, ...]]:
    """Quality marks per sample (an empty tuple: nothing odd); `clipped` from `clipped_channels`."""
    n = mins.shape[0]
    if rng is None or mins.shape[1] != len(rng.low):
        return [()] * n
    low, high = np.asarray(rng.low), np.asarray(rng.high)
    span = np.maximum(high - low, 1e-12)
    marks = {OUT_OF_RANGE: ((mins < low - MARK_SPANS * span) | (maxs > high + MARK_SPANS * span)).any(axis=1)}
    if "flat" in rng.checks:
        marks[FLAT] = ((maxs - mins) < FLAT_FRACTION * span).any(axis=1)
    if "clipping" in rng.checks and clipped is not None:
        marks[CLIPPED] = clipped.any(axis=1)
    return [tuple(k for k, v in marks.items() if v[i]) for i in range(n)]
