"""Input checks against the model spec: rank, fixed and minimum sizes, safe dtype conversion, NaN/Inf, rate.

Every failure raises `InputError` naming the input, what was wrong and how to fix it. Preprocessing that
the spec assigns to the runtime (normalisation with `applied_in == "runtime"`) happens here and only here;
edgemed's own models normalise in the graph, so for them nothing is applied twice.
"""

from __future__ import annotations

import math

import numpy as np

from edgemed.core.errors import InputError
from edgemed.core.spec import ModelSpec, TensorSpec

FLOAT32_EXACT_INT = 2**24  # integers up to this convert to float32 without rounding


def all_finite(arr: np.ndarray) -> bool:
    """True when no element is NaN or Inf. A finite float64 sum proves it in one pass without a mask (any NaN
    or Inf makes the sum NaN or Inf; float32 values cannot overflow a float64 sum); only a non-finite sum,
    where numpy may warn about inf - inf, takes the element-wise path."""
    if math.isfinite(arr.sum(dtype=np.float64)):
        return True
    return bool(np.isfinite(arr).all())


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
        if kind in "iu" and arr.size and np.abs(arr).max() > FLOAT32_EXACT_INT:
            raise InputError(f"input {name!r}: integers above 2**24 lose precision as {target}; scale them first")
        with np.errstate(over="ignore"):
            return arr.astype(target)
    if kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(f"input {name!r}: needs whole numbers ({target}), got fractional or non-finite floats")
    if kind == "u" and arr.size and arr.max() > np.iinfo(target).max:
        raise InputError(f"input {name!r}: values too large for {target}")
    return arr.astype(target)


def check_array(t: TensorSpec, value: object, sizes: dict[str, int], stream_axis: str | None = None) -> np.ndarray:
    """Check one input against its spec; `sizes` binds named axes across inputs (the same batch everywhere).
    `stream_axis` may take any length (a streaming chunk of any size, even empty)."""
    try:
        arr = value if type(value) is np.ndarray else np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"input {t.name!r}: not an array ({exc})") from exc
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
    if arr.dtype.kind == "f" and not all_finite(arr):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(f"input {t.name!r}: {bad} NaN/Inf value(s); impute or drop them before inference")
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def check_rate(spec: ModelSpec, sampling_rate_hz: float | None) -> None:
    expected = spec.preprocessing.sampling_rate_hz or spec.preprocessing.frame_rate_hz
    if sampling_rate_hz is None or expected is None:
        return
    if abs(sampling_rate_hz - expected) > 1e-6 * expected:
        raise InputError(f"signal sampled at {sampling_rate_hz:g} Hz but the model expects {expected:g} Hz; "
                         "resample it first")


def apply_runtime_preprocessing(spec: ModelSpec, name: str, arr: np.ndarray) -> np.ndarray:
    """The one place the runtime applies preprocessing: only what the spec assigns to the runtime."""
    norm = spec.preprocessing.normalization
    if norm is None or norm.applied_in != "runtime" or name != spec.inputs[0].name:
        return arr
    shape = [1] * arr.ndim
    shape[norm.axis] = len(norm.mean)
    mean = np.asarray(norm.mean, arr.dtype).reshape(shape)
    std = np.asarray(norm.std, arr.dtype).reshape(shape)
    return (arr - mean) / std


def prepare_inputs(spec: ModelSpec, inputs: dict[str, object], sampling_rate_hz: float | None = None,
                   ) -> dict[str, np.ndarray]:
    """Checked, converted, preprocessed feeds for every model input. A missing int64 `lengths` input is filled
    with the full time length (no padding)."""
    check_rate(spec, sampling_rate_hz)
    unknown = [k for k in inputs if all(k != t.name for t in spec.inputs)]
    if unknown:
        raise InputError(f"unknown input(s) {unknown}; the model takes {[t.name for t in spec.inputs]}")
    sizes: dict[str, int] = {}
    feeds = {}
    filled = False
    for t in spec.inputs:
        if inputs.get(t.name) is None:
            if t.name == "lengths" and "time" in sizes:
                feeds[t.name] = np.full(sizes["batch"], sizes["time"], np.int64)
                filled = True
                continue
            raise InputError(f"missing input {t.name!r} ({list(t.shape)}, {t.dtype})")
        feeds[t.name] = apply_runtime_preprocessing(spec, t.name, check_array(t, inputs[t.name], sizes))
    if "lengths" in feeds and "time" in sizes and not filled:
        lengths = feeds["lengths"]
        if lengths.min() < 1 or lengths.max() > sizes["time"]:
            raise InputError(f"input 'lengths': values must be 1..{sizes['time']} (the time axis), got "
                             f"{int(lengths.min())}..{int(lengths.max())}")
    return feeds
