"""Data for quantisation: calibration inputs (any source training accepts) and labelled validation data.

By default both come from what the model's provenance records: calibration from the training split (the
recorded data minus the validation groups), the accuracy gate on the validation groups. Calibrating on the
data the gate then scores would flatter the quantised model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemed.core.errors import EdgemedError, QuantizationError
from edgemed.core.examples import array_feeds
from edgemed.core.spec import ModelSpec
from edgemed.runtime.model.validate import check_array
from edgemed.train.data import Dataset, load_data
from edgemed.train.data.load import model_data_options

MIN_CALIBRATION = 16
DEFAULT_CALIBRATION_SAMPLES = 1024


@dataclass
class Labelled:
    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None
    source: str
    context: dict[str, np.ndarray] = field(default_factory=dict)

    def feeds(self, start: int, stop: int, spec: ModelSpec) -> dict[str, np.ndarray]:
        return array_feeds(spec, self.x[start:stop], None if self.lengths is None else self.lengths[start:stop],
                           {k: v[start:stop] for k, v in self.context.items()})

    def take(self, idx: np.ndarray | slice) -> Labelled:
        return Labelled(self.x[idx], self.y[idx], None if self.lengths is None else self.lengths[idx], self.source,
                        {k: v[idx] for k, v in self.context.items()})


def _load(source: str, provenance: dict[str, Any], spec: ModelSpec, other_source: bool = False) -> Dataset:
    """`source` read with the recorded data options (without the record list when it is another source) and the
    model's own beat context."""
    options = model_data_options(provenance.get("data_options"), spec)
    if other_source:
        options.pop("records", None)
    try:
        return load_data(source, seed=provenance.get("seed", 0), options=options)
    except EdgemedError as exc:
        raise QuantizationError(f"cannot load {source}: {exc}") from exc


def _split(ds: Dataset, provenance: dict[str, Any]) -> tuple[Dataset, Dataset]:
    groups = provenance.get("validation_groups") or []
    mask = np.isin(ds.groups.astype(str), groups)
    if not mask.any() or mask.all():
        raise QuantizationError("the recorded validation groups are not in the recorded data; pass `validation` DATA")
    return ds.subset(np.flatnonzero(~mask)), ds.subset(np.flatnonzero(mask))


def _check(ds: Dataset, spec: ModelSpec, what: str) -> None:
    try:
        check_array(spec.signal, ds.X[:2], {})
    except EdgemedError as exc:
        raise QuantizationError(f"{what} data ({ds.source}) does not fit the model: {exc}") from exc
    if tuple(ds.labels) != tuple(spec.labels):
        raise QuantizationError(f"{what} data has labels {list(ds.labels)}, the model {list(spec.labels)}")


def _labelled(ds: Dataset, limit: int | None = None) -> Labelled:
    idx = np.arange(len(ds)) if limit is None or len(ds) <= limit else np.linspace(0, len(ds) - 1, limit).astype(int)
    return Labelled(ds.X[idx], ds.y[idx], None if ds.lengths is None else ds.lengths[idx], ds.source,
                    {k: v[idx] for k, v in ds.context.items()})


def quantization_data(spec: ModelSpec, provenance: dict[str, Any], calibration: str | None, validation: str | None,
                      calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES) -> tuple[Labelled, Labelled]:
    """(calibration, validation) for a model; explicit sources override the recorded ones."""
    recorded = provenance.get("data")
    train_part = val_part = None
    if recorded and (calibration is None or validation is None):
        if provenance.get("validation_data"):  # trained with an outside validation set: all data trained
            train_part = _load(recorded, provenance, spec)
            val_part = _load(provenance["validation_data"], provenance, spec, True)
        else:
            train_part, val_part = _split(_load(recorded, provenance, spec), provenance)
    cal_ds = _load(calibration, provenance, spec, True) if calibration else train_part
    val_ds = _load(validation, provenance, spec, True) if validation else val_part
    if cal_ds is None or val_ds is None:
        raise QuantizationError("the model's provenance names no data here; pass `calibration` and `validation`")
    _check(cal_ds, spec, "calibration")
    _check(val_ds, spec, "validation")
    if len(cal_ds) < MIN_CALIBRATION:
        raise QuantizationError(f"calibration data has {len(cal_ds)} samples; static quantisation needs at least "
                                f"{MIN_CALIBRATION} to estimate activation ranges")
    return _labelled(cal_ds, calibration_samples), _labelled(val_ds)
