"""Model inputs built from a spec alone (numpy only): seeded examples for export, parity checks and profiling, and
feeds from data arrays. Inputs are found by role (signal, lengths, state), never by name."""

from __future__ import annotations

import numpy as np

from edgemed.core.errors import SpecError
from edgemed.core.spec import ModelSpec, TensorSpec


def tensor_shape(t: TensorSpec, sizes: dict[str, int]) -> tuple[int, ...]:
    """Concrete shape of `t` with its named axes taken from `sizes`."""
    missing = [d for d in t.shape if isinstance(d, str) and d not in sizes]
    if missing:
        raise SpecError(f"input {t.name!r}: no size given for axis {missing}")
    return tuple(sizes[d] if isinstance(d, str) else d for d in t.shape)


def example_sizes(spec: ModelSpec, batch: int) -> dict[str, int]:
    """Sizes for every named axis: `batch`, and the spec's example size for each other dynamic axis."""
    sizes = {"batch": batch, **spec.example_sizes}
    for t in spec.inputs:
        for name in t.dynamic_axes.values():
            sizes.setdefault(name, max(t.min_sizes.get(name, 1), 16))
    return sizes


def example_inputs(spec: ModelSpec, sizes: dict[str, int], seed: int = 0, mixed_lengths: bool = True,
                   state: str = "zeros") -> dict[str, np.ndarray]:
    """Random standard-normal float inputs for every model input, plus streaming state if the spec has one.

    A lengths input gets the full length of the axis it counts for its first sample and random shorter lengths for
    the rest (padding at the end), so a variable-length path is exercised. `state` is "zeros" or "random".
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for t in spec.inputs:
        shape = tensor_shape(t, sizes)
        if t.role == "lengths":
            full = sizes.get(t.counts, 1)
            lengths = rng.integers(1, full + 1, shape) if mixed_lengths else np.full(shape, full)
            lengths.flat[0] = full
            out[t.name] = lengths.astype(t.dtype)
        else:
            out[t.name] = rng.standard_normal(shape).astype(t.dtype)
    if spec.streaming is not None:
        for t in spec.streaming.state_inputs:
            shape = tensor_shape(t, sizes)
            out[t.name] = (np.zeros(shape) if state == "zeros" else 0.5 * rng.standard_normal(shape)).astype(t.dtype)
    return out


def array_feeds(spec: ModelSpec, x: np.ndarray, lengths: np.ndarray | None = None,
                context: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Feeds for data arrays: the signal, (for models taking lengths) the given lengths or the full length, and
    (for models taking context) the context arrays by source."""
    feeds = {spec.signal.name: x}
    for t in spec.inputs:
        if t.role == "context":
            if not context or t.source not in context:
                raise SpecError(f"input {t.name!r} is computed from beat positions ({t.source}); these data lack it")
            feeds[t.name] = np.asarray(context[t.source], dtype=t.dtype)
    t = spec.lengths
    if t is not None:
        full = x.shape[spec.signal.shape.index(t.counts)]
        feeds[t.name] = (np.asarray(lengths, dtype=t.dtype) if lengths is not None
                         else np.full(x.shape[0], full, dtype=t.dtype))
    return feeds
