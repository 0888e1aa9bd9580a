"""Input checks against the model spec: rank, fixed and minimum sizes, safe dtype conversion, NaN/Inf, magnitude,
rate, and the plain-Python arguments of the public API.

Every failure raises `InputError` naming the input, what was wrong and how to fix it. Preprocessing that the
spec assigns to the runtime (normalisation with `applied_in == "runtime"`) happens here and only here;
edgemed's own models normalise in the graph, so for them nothing is applied twice.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import numpy as np

from edgemed.core.errors import InputError
from edgemed.core.limits import check
from edgemed.core.spec import ModelSpec, TensorSpec
from edgemed.runtime.model.plausibility import assess, check_magnitude, clipped_channels, extremes

FLOAT32_EXACT_INT = 2**24  # integers up to this convert to float32 without rounding


def positive_int(value: object, name: str, maximum: int | None = None) -> int:
    """`value` as an int >= 1 (and <= maximum), refusing bools, floats, text and None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
    value = int(value)
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise InputError(f"{name} must be >= 1{bound}, got {value}")
    return value


def positive_rate(value: object, name: str = "sampling_rate_hz") -> float:
    """A finite positive rate within the limit (Hz)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number of Hz, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive finite number of Hz, got {value}")
    check("rate_hz", value, name)
    return value


def all_finite(arr: np.ndarray) -> bool:
    """True when no element is NaN or Inf (min and max propagate both)."""
    if arr.size == 0 or arr.dtype.kind not in "fc":
        return True
    return bool(np.isfinite(arr.min()) and np.isfinite(arr.max()))


def safe_cast(name: str, arr: np.ndarray, dtype: str) -> np.ndarray:
    """Convert only when no value changes meaning: floats narrow to float32 (overflow shows up as Inf and is
    refused), integers become float32 only while exact, floats become int64 only when whole."""
    target = np.dtype(dtype)
    kind = arr.dtype.kind
    if arr.dtype == target:
        return arr
    if kind not in "fiu":
        raise InputError(f"input {name!r}: dtype {arr.dtype} cannot be converted to {target}; pass numbers")
    if target.kind == "f":
        if kind in "iu" and arr.size and np.abs(arr.astype(np.float64)).max() > FLOAT32_EXACT_INT:
            raise InputError(f"input {name!r}: integers above 2**24 lose precision as {target}; scale them first")
        with np.errstate(over="ignore", invalid="ignore"):
            return arr.astype(target)
    if kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(f"input {name!r}: needs whole numbers ({target}), got fractional or non-finite floats")
        if arr.size and np.abs(arr).max() > np.iinfo(target).max:
            raise InputError(f"input {name!r}: values too large for {target}")
    if kind == "u" and arr.size and arr.max() > np.iinfo(target).max:
        raise InputError(f"input {name!r}: values too large for {target}")
    return arr.astype(target)


def as_array(name: str, value: object) -> np.ndarray:
    if type(value) is np.ndarray:
        return value
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise InputError(f"input {name!r}: not an array of numbers ({type(exc).__name__})") from exc
    if arr.dtype == object:
        raise InputError(f"input {name!r}: not an array of numbers (got Python objects of mixed types or shapes)")
    return arr


def check_array(t: TensorSpec, value: object, sizes: dict[str, int], stream_axis: str | None = None) -> np.ndarray:
    """Check one input's rank, sizes and dtype against its spec; `sizes` binds named axes across inputs (the same
    batch everywhere). `stream_axis` may take any length (a streaming chunk of any size, even empty). Values are
    checked by `Assessment` (the main input) or `check_finite`."""
    arr = as_array(t.name, value)
    if arr.ndim != len(t.shape):
        raise InputError(f"input {t.name!r}: expected {len(t.shape)} dimensions {list(t.shape)}, got shape "
                         f"{list(arr.shape)}")
    for axis, (dim, size) in enumerate(zip(t.shape, arr.shape, strict=True)):
        if isinstance(dim, int):
            if size != dim:
                raise InputError(f"input {t.name!r}: axis {axis} must be {dim}, got {size} (shape {list(arr.shape)})")
            continue
        if dim == stream_axis:
            continue
        if size == 0:
            raise InputError(f"input {t.name!r}: axis {axis} ({dim}) is empty")
        if size < t.min_sizes.get(dim, 1):
            raise InputError(f"input {t.name!r}: axis {axis} ({dim}) is {size}, the model needs at least "
                             f"{t.min_sizes[dim]}")
        if sizes.setdefault(dim, size) != size:
            raise InputError(f"input {t.name!r}: axis {dim!r} is {size} here but {sizes[dim]} in another input")
    if arr.dtype != t.dtype:
        arr = safe_cast(t.name, arr, t.dtype)
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def check_finite(name: str, arr: np.ndarray) -> None:
    if not all_finite(arr):
        finite = np.isfinite(arr)
        first = [int(i) for i in np.argwhere(~finite)[0]]
        raise InputError(f"input {name!r}: {int(finite.size - np.count_nonzero(finite))} NaN/Inf value(s), the first "
                         f"at index {first}; impute or drop them before inference")


class Assessment(NamedTuple):
    """Per-sample facts about the main input, kept small (no reference to the caller's array)."""

    mins: np.ndarray
    maxs: np.ndarray
    clipped: np.ndarray | None  # [batch, channels] bool, for waveforms (see `clipped_channels`)

    def quality(self, spec: ModelSpec) -> list[tuple[str, ...]]:
        return assess(self.mins, self.maxs, spec.preprocessing.input_range, self.clipped)


_F32 = np.dtype(np.float32)


@functools.lru_cache(maxsize=64)
def _nothing(n: int) -> np.ndarray:
    """An empty [n, 0] array (no per-channel facts), shared and read-only: made once per batch size."""
    arr = np.zeros((n, 0))
    arr.flags.writeable = False
    return arr


def assess_input(spec: ModelSpec, name: str, arr: np.ndarray, lengths: np.ndarray | None = None) -> Assessment:
    """Finite values, no absurd magnitudes (InputError), and the facts behind the quality marks. With `lengths`
    shorter than the time axis, only each sequence's valid steps count (padding is not signal)."""
    rng = spec.preprocessing.input_range
    axis = rng.axis if rng is not None and rng.axis < arr.ndim and arr.shape[rng.axis] == len(rng.low) else None
    if arr.size == 0:
        return Assessment(np.zeros((arr.shape[0] if arr.ndim else 0, 1)), np.zeros((0, 1)), None)
    if axis is None and lengths is None:
        # No training range to compare with: only finiteness matters, and one reduction proves it (a NaN or Inf
        # makes it non-finite; so would float32 overflow, which the exact check below then tells apart). For
        # float32 the dot product with itself is that reduction, cheaper than a sum on small arrays.
        screen = np.vdot(arr, arr) if arr.dtype == _F32 else arr.sum()
        if not math.isfinite(screen):
            mins, maxs = extremes(arr, None)
            check_magnitude(name, mins, maxs, None)
        nothing = _nothing(arr.shape[0] if arr.ndim else 1)
        return Assessment(nothing, nothing, None)
    if lengths is not None and arr.ndim >= 2 and int(lengths.min()) < arr.shape[1]:
        steps = np.arange(arr.shape[1]).reshape((1, -1) + (1,) * (arr.ndim - 2))
        valid = steps < lengths.reshape((-1,) + (1,) * (arr.ndim - 1))
        mins, _ = extremes(np.where(valid, arr, np.inf), axis)
        _, maxs = extremes(np.where(valid, arr, -np.inf), axis)
    else:
        mins, maxs = extremes(arr, axis)
    check_magnitude(name, mins, maxs, rng if axis is not None else None)
    clipped = None
    if axis is not None and "clipping" in rng.checks:
        clipped = clipped_channels(arr, axis, mins, maxs)
    return Assessment(mins, maxs, clipped)


class InputCheck:
    """`assess_input` for one input of one shape (a stream's chunks, a repeated batch), its branch chosen once.
    Without a training range to compare with, one reduction proves the values finite and every call shares one
    empty assessment (nothing per sample to keep); otherwise it is `assess_input` itself."""

    def __init__(self, spec: ModelSpec, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        rng = spec.preprocessing.input_range
        self.spec, self.name = spec, name
        ranged = rng is not None and rng.axis < len(shape) and shape[rng.axis] == len(rng.low)
        self.screen_only = not ranged and dtype == _F32 and bool(shape) and all(shape)
        n = shape[0] if shape else 1
        self.empty = Assessment(_nothing(n), _nothing(n), None)

    def __call__(self, arr: np.ndarray) -> Assessment:
        if self.screen_only:
            if not math.isfinite(np.vdot(arr, arr)):
                mins, maxs = extremes(arr, None)
                check_magnitude(self.name, mins, maxs, None)
            return self.empty
        return assess_input(self.spec, self.name, arr)


def check_rate(spec: ModelSpec, sampling_rate_hz: float | None) -> None:
    expected = spec.preprocessing.sampling_rate_hz or spec.preprocessing.frame_rate_hz
    if sampling_rate_hz is None:
        return
    rate = positive_rate(sampling_rate_hz)
    if expected is None:
        return
    if abs(rate - expected) > 1e-6 * expected:
        raise InputError(f"signal sampled at {rate:g} Hz but the model expects {expected:g} Hz; "
                         "resample it first")


def apply_runtime_preprocessing(spec: ModelSpec, name: str, arr: np.ndarray) -> np.ndarray:
    """The one place the runtime applies preprocessing: only what the spec assigns to the runtime."""
    norm = spec.preprocessing.normalization
    if norm is None or norm.applied_in != "runtime" or name != spec.signal.name:
        return arr
    shape = [1] * arr.ndim
    shape[norm.axis] = len(norm.mean)
    mean = np.asarray(norm.mean, arr.dtype).reshape(shape)
    std = np.asarray(norm.std, arr.dtype).reshape(shape)
    return (arr - mean) / std


def prepare_inputs(spec: ModelSpec, inputs: dict[str, object], sampling_rate_hz: float | None = None,
                   ) -> tuple[dict[str, np.ndarray], Assessment]:
    """Checked, converted, preprocessed feeds for every model input, and the signal's assessment. A missing lengths
    input is filled with the full length of the axis it counts (no padding)."""
    check_rate(spec, sampling_rate_hz)
    unknown = [k for k in inputs if all(k != t.name for t in spec.inputs)]
    if unknown:
        raise InputError(f"unknown input(s) {unknown}; the model takes {[t.name for t in spec.inputs]}")
    sizes: dict[str, int] = {}
    feeds = {}
    filled = False
    lengths_spec = spec.lengths
    for t in sorted(spec.inputs, key=lambda t: t.role != "signal"):  # the signal first: it binds the axis sizes
        if inputs.get(t.name) is None:
            if t is lengths_spec and t.counts in sizes:
                feeds[t.name] = np.full(sizes["batch"], sizes[t.counts], np.int64)
                filled = True
                continue
            raise InputError(f"missing input {t.name!r} ({list(t.shape)}, {t.dtype})")
        feeds[t.name] = check_array(t, inputs[t.name], sizes)
    lengths = feeds[lengths_spec.name] if lengths_spec is not None and not filled else None
    if lengths is not None and lengths_spec.counts in sizes:
        full = sizes[lengths_spec.counts]
        if lengths.min() < 1 or lengths.max() > full:
            raise InputError(f"input {lengths_spec.name!r}: values must be 1..{full} (the {lengths_spec.counts} "
                             f"axis), got {int(lengths.min())}..{int(lengths.max())}")
    main = spec.signal.name
    assessment = assess_input(spec, main, feeds[main], lengths)
    for t in spec.inputs:
        if t.name != main:
            check_finite(t.name, feeds[t.name])
    feeds = {k: apply_runtime_preprocessing(spec, k, v) for k, v in feeds.items()}
    return feeds, assessment
