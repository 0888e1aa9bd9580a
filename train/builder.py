"""Fit a registered model to a dataset: input sizes, labels and normalisation come from the data."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from edgemed.core.errors import DataError
from edgemed.core.spec import InputRange, Normalization, Preprocessing
from edgemed.train.data.dataset import Dataset
from edgemed.train.models import create_model

# Per architecture: the rank of X, the axis of X holding channels, and the config read from X's shape.
LAYOUTS = {
    "gru": (3, 2, lambda s: {"input_size": s[2]}),
    "cnn_gru": (3, 1, lambda s: {"leads": s[1]}),
    "cnn_gru_frames": (5, 2, lambda s: {"in_channels": s[2], "height": s[3], "width": s[4]}),
}


RANGE_QUANTILES = (0.001, 0.999)
MAX_RANGE_VALUES = 2_000_000  # values per channel the percentiles are taken from (an even subsample beyond)


def _channel_values(ds: Dataset, axis: int) -> np.ndarray:
    """All values per channel [values, channels], without the end padding of variable-length data."""
    x = np.moveaxis(ds.X, axis, -1)
    if ds.lengths is not None:
        mask = np.arange(ds.X.shape[1])[None, :] < ds.lengths[:, None]
        x = x[mask]
    return x.reshape(-1, x.shape[-1])


def channel_stats(ds: Dataset, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel over the training data, ignoring end padding of variable-length data."""
    flat = _channel_values(ds, axis).astype(np.float64)
    std = flat.std(axis=0)
    return flat.mean(axis=0), np.where(std > 1e-8, std, 1.0)


def input_range(ds: Dataset, axis: int) -> InputRange:
    """The training data's 0.1 and 99.9 percentiles per channel: what the runtime calls plausible input."""
    flat = _channel_values(ds, axis)
    if len(flat) > MAX_RANGE_VALUES:
        flat = flat[np.linspace(0, len(flat) - 1, MAX_RANGE_VALUES).astype(np.int64)]
    low, high = np.quantile(flat, RANGE_QUANTILES, axis=0)
    return InputRange(axis=axis, low=tuple(low), high=tuple(high), checks=ds.signal_checks)


def accepted_rates(ds: Dataset) -> tuple[float, float] | None:
    """Raw-signal rates the runtime may resample to the model's: no lower than twice the band-pass edge (or half
    the model's rate) and at most 32 times the model's rate."""
    if ds.sampling_rate_hz is None or ds.window.get("kind") == "stay":
        return None
    low = max(ds.sampling_rate_hz / 2, 2 * ds.bandpass.high_hz if ds.bandpass else 0.0)
    return (low, 32 * ds.sampling_rate_hz)


def build_for_data(name: str, ds: Dataset, overrides: dict[str, Any] | None = None) -> nn.Module:
    """Create model `name` sized for `ds`, normalising with statistics of `ds` (the training split)."""
    overrides = dict(overrides or {})
    if name not in LAYOUTS:
        create_model(name)  # raises ModelError naming the available models
    rank, axis, dims = LAYOUTS[name]
    if ds.X.ndim != rank:
        raise DataError(f"{ds.source}: model {name} needs X of rank {rank}, data has shape {ds.X.shape}")
    model_layout = create_model(name).spec.inputs[0].layout
    if ds.layout is not None and ds.layout != model_layout:
        raise DataError(f"{ds.source}: the data is laid out {ds.layout} but {name} takes {model_layout}; "
                        f"choose the model for this data (ECG: cnn_gru, vital signs: gru, image sequences: "
                        "cnn_gru_frames)")
    if ds.lengths is not None and name != "gru":
        raise DataError(f"{ds.source}: variable-length (padded) data fits only the gru model, not {name}")
    labels = tuple(overrides.pop("labels", ds.labels))
    if len(labels) != len(ds.labels):
        raise DataError(
            f"{ds.source}: the data has {len(ds.labels)} classes {list(ds.labels)} but the model was given "
            f"{len(labels)} labels {list(labels)}"
        )
    present = int((np.bincount(ds.y, minlength=len(labels)) > 0).sum())
    if present < 2:
        raise DataError(f"{ds.source}: the training data holds {present} class; a classifier needs two or more")
    mean, std = channel_stats(ds, axis)
    preprocessing = Preprocessing(
        sampling_rate_hz=ds.sampling_rate_hz, frame_rate_hz=ds.frame_rate_hz, units=ds.units,
        normalization=Normalization(mean=tuple(mean), std=tuple(std), axis=axis, applied_in="graph"),
        bandpass=ds.bandpass, window=dict(ds.window), input_range=input_range(ds, axis),
        rate_range_hz=accepted_rates(ds),
    )
    config = {**dims(ds.X.shape), "labels": labels, "preprocessing": preprocessing,
              "channel_names": ds.channel_names, **overrides}
    return create_model(name, **config)
