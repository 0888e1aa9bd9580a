"""The in-memory dataset every source produces: arrays plus the facts a model spec needs about them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec import BandpassFilter


@dataclass
class Dataset:
    """X [n, ...] float32, integer labels y [n], group ids (patient or record) for splitting.

    `lengths` is set for padded variable-length sequences (padding at the end of the time axis).
    """

    X: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    groups: np.ndarray
    source: str
    sha256: str
    lengths: np.ndarray | None = None
    sampling_rate_hz: float | None = None
    frame_rate_hz: float | None = None
    units: str | None = None
    bandpass: BandpassFilter | None = None
    window: dict = field(default_factory=dict)
    channel_names: tuple[str, ...] = ()
    layout: str | None = None  # e.g. "batch,lead,sample"; None when the source cannot tell (plain arrays)
    signal_checks: tuple[str, ...] = ("range",)  # plausibility checks the runtime applies (see InputRange)

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X)
        self.y = np.asarray(self.y)
        self.groups = np.asarray(self.groups)
        self.labels = tuple(str(v) for v in self.labels)
        self.validate()

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def validate(self) -> None:
        """Reject data no model should train on, naming what is wrong and where."""
        n = self.X.shape[0] if self.X.ndim else 0
        if n == 0:
            raise DataError(f"{self.source}: no samples")
        if not np.issubdtype(self.X.dtype, np.number):
            raise DataError(f"{self.source}: X must be numeric, got dtype {self.X.dtype}")
        self.X = self.X.astype(np.float32, copy=False)
        bad = ~np.isfinite(self.X)
        if bad.any():
            first = int(np.argwhere(bad.reshape(n, -1).any(axis=1))[0, 0])
            raise DataError(
                f"{self.source}: X contains {int(bad.sum())} NaN/Inf value(s) (first in sample {first}); "
                "impute or drop them before training"
            )
        if self.y.shape != (n,):
            raise DataError(f"{self.source}: y has shape {self.y.shape}, expected ({n},) to match X")
        if not np.issubdtype(self.y.dtype, np.integer):
            raise DataError(f"{self.source}: labels y must be integers, got dtype {self.y.dtype}")
        self.y = self.y.astype(np.int64)
        if self.y.min() < 0 or self.y.max() >= len(self.labels):
            raise DataError(
                f"{self.source}: labels range {int(self.y.min())}..{int(self.y.max())} but there are "
                f"{len(self.labels)} class names {list(self.labels)}"
            )
        if self.groups.shape != (n,):
            raise DataError(f"{self.source}: groups has shape {self.groups.shape}, expected ({n},)")
        if self.lengths is not None:
            self.lengths = np.asarray(self.lengths).astype(np.int64)
            if self.lengths.shape != (n,) or self.lengths.min() < 1 or self.lengths.max() > self.X.shape[1]:
                raise DataError(f"{self.source}: lengths must be ({n},) values in 1..{self.X.shape[1]}")

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset(
            X=self.X[idx], y=self.y[idx], labels=self.labels, groups=self.groups[idx], source=self.source,
            sha256=self.sha256, lengths=None if self.lengths is None else self.lengths[idx],
            sampling_rate_hz=self.sampling_rate_hz, frame_rate_hz=self.frame_rate_hz, units=self.units,
            bandpass=self.bandpass, window=dict(self.window), channel_names=self.channel_names, layout=self.layout,
            signal_checks=self.signal_checks,
        )

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(self.labels))
        return {name: int(c) for name, c in zip(self.labels, counts, strict=True)}
