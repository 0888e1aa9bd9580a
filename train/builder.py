"""Fit a registered model to a dataset: input sizes, labels, channel names, normalisation and the plausible input
range come from the data (its `DataSpec` and the training split's statistics)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec import InputRange, Normalization
from edgemed.train.data.dataset import Dataset
from edgemed.train.models import create_model, family
from edgemed.train.models.base import EdgeModule

RANGE_QUANTILES = (0.001, 0.999)
MAX_RANGE_VALUES = 2_000_000  # values per channel the percentiles are taken from (an even subsample beyond)


def _channel_values(ds: Dataset, axis: int, x: np.ndarray | None = None) -> np.ndarray:
    """All values per channel [values, channels] of `x` (default: the data's X), without the end padding of
    variable-length data."""
    x = ds.X if x is None else x
    moved = np.moveaxis(x, axis, -1)
    if ds.lengths is not None:
        mask = np.arange(x.shape[1])[None, :] < ds.lengths[:, None]
        moved = moved[mask]
    return moved.reshape(-1, moved.shape[-1])


def channel_stats(ds: Dataset, axis: int, x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel over the training data (or `x`, a view of it), ignoring end padding."""
    flat = _channel_values(ds, axis, x).astype(np.float64)
    std = flat.std(axis=0)
    return flat.mean(axis=0), np.where(std > 1e-8, std, 1.0)


def input_range(ds: Dataset, axis: int) -> InputRange:
    """The training data's 0.1 and 99.9 percentiles per channel: what the runtime calls plausible input."""
    flat = _channel_values(ds, axis)
    if len(flat) > MAX_RANGE_VALUES:
        flat = flat[np.linspace(0, len(flat) - 1, MAX_RANGE_VALUES).astype(np.int64)]
    low, high = np.quantile(flat, RANGE_QUANTILES, axis=0)
    return InputRange(axis=axis, low=tuple(low), high=tuple(high), checks=ds.spec.signal_checks)


def accepted_rates(ds: Dataset) -> tuple[float, float] | None:
    """Raw-signal rates the runtime may resample to the model's: no lower than twice the band-pass edge (or half
    the model's rate) and at most 32 times the model's rate. None for data the runtime never resamples."""
    pre = ds.spec.preprocessing
    if pre.sampling_rate_hz is None or pre.window is None or not pre.window.from_recording:
        return None
    low = max(pre.sampling_rate_hz / 2, 2 * pre.bandpass.high_hz if pre.bandpass else 0.0)
    return (low, 32 * pre.sampling_rate_hz)


def check_fit(name: str, ds: Dataset) -> type[EdgeModule]:
    """The family of `name`, if `ds` is laid out as it takes; DataError naming the mismatch otherwise."""
    cls = family(name)
    traits = cls.traits
    rank = len(traits.layouts[0].split(","))
    if ds.X.ndim != rank:
        raise DataError(f"{ds.source}: model {name} needs X of rank {rank} ({traits.layouts[0]}), data has shape "
                        f"{ds.X.shape}")
    if ds.spec.layout is not None and ds.spec.layout not in traits.layouts:
        raise DataError(f"{ds.source}: the data is laid out {ds.spec.layout} but {name} takes "
                        f"{' or '.join(traits.layouts)}; choose a model for this layout")
    if ds.lengths is not None and not traits.takes_lengths:
        raise DataError(f"{ds.source}: variable-length (padded) data needs a model that takes sequence lengths, "
                        f"not {name}")
    return cls


def build_for_data(name: str, ds: Dataset, overrides: dict[str, Any] | None = None) -> EdgeModule:
    """Create model `name` sized for `ds`, normalising with statistics of `ds` (the training split)."""
    overrides = dict(overrides or {})
    cls = check_fit(name, ds)
    labels = tuple(overrides.pop("labels", ds.labels))
    if len(labels) != len(ds.labels):
        raise DataError(
            f"{ds.source}: the data has {len(ds.labels)} classes {list(ds.labels)} but the model was given "
            f"{len(labels)} labels {list(labels)}"
        )
    present = int((np.bincount(ds.y, minlength=len(labels)) > 0).sum())
    if present < 2:
        raise DataError(f"{ds.source}: the training data holds {present} class; a classifier needs two or more")
    axis = cls.traits.channel_axis
    context = cls.context_config({k: v.shape for k, v in ds.context.items()})
    mean, std = channel_stats(ds, axis, cls.normalized_view(ds.X, ds.context, {**context, **overrides}))
    preprocessing = dataclasses.replace(
        ds.spec.preprocessing, normalization=Normalization(mean=tuple(mean), std=tuple(std), axis=axis),
        input_range=input_range(ds, axis), rate_range_hz=accepted_rates(ds))
    config = {**cls.data_config(ds.X.shape), **context, "labels": labels, "preprocessing": preprocessing,
              "channel_names": ds.spec.channel_names, **overrides}
    return create_model(name, **config)
