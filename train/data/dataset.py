"""The in-memory dataset every source produces: arrays plus the `DataSpec` describing them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec.data import DataSpec


@dataclass
class Dataset:
    """X [n, ...] float32, integer labels y [n], group ids (patient or record) for splitting, and the spec
    (labels, layout, channel names, preprocessing the samples had).

    `lengths` is set for padded variable-length sequences (padding at the end of the time axis).
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    source: str
    sha256: str
    spec: DataSpec
    lengths: np.ndarray | None = None
    context: dict[str, np.ndarray] = field(default_factory=dict)  # beat context arrays by source (see TensorSpec)

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X)
        self.y = np.asarray(self.y)
        self.groups = np.asarray(self.groups)
        self.validate()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def validate(self) -> None:
        """Reject data no model should train on, naming what is wrong and where."""
        n = self.X.shape[0] if self.X.ndim else 0
        if n == 0:
            raise DataError(f"{self.source}: no samples")
        if not np.issubdtype(self.X.dtype, np.number) or np.issubdtype(self.X.dtype, np.complexfloating):
            raise DataError(f"{self.source}: X must be real numbers, got dtype {self.X.dtype}")
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
        axis = self.spec.channel_axis
        if self.spec.channel_names and axis is not None:
            if self.X.ndim > axis and self.X.shape[axis] != len(self.spec.channel_names):
                raise DataError(f"{self.source}: {len(self.spec.channel_names)} channel names for "
                                f"{self.X.shape[axis]} channels")
        for source, arr in self.context.items():
            if len(arr) != n or not np.isfinite(arr).all():
                raise DataError(f"{self.source}: context {source!r} must hold {n} finite rows")
        if self.lengths is not None:
            self.lengths = np.asarray(self.lengths)
            if not np.issubdtype(self.lengths.dtype, np.integer):
                raise DataError(f"{self.source}: lengths must be integers, got dtype {self.lengths.dtype}")
            self.lengths = self.lengths.astype(np.int64)
            if self.X.ndim < 2 or self.lengths.shape != (n,) or self.lengths.min() < 1 \
                    or self.lengths.max() > self.X.shape[1]:
                raise DataError(f"{self.source}: lengths must be ({n},) values in 1..{self.X.shape[1]}")

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset(X=self.X[idx], y=self.y[idx], groups=self.groups[idx], source=self.source, sha256=self.sha256,
                       spec=self.spec, lengths=None if self.lengths is None else self.lengths[idx],
                       context={k: v[idx] for k, v in self.context.items()})

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(self.labels))
        return {name: int(c) for name, c in zip(self.labels, counts, strict=True)}
