"""Training sets from model-ready samples: `.npz`, `.npy` with sibling files, CSV sequences, read by the registered
readers (`edgemed.core.readers`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.readers import Reader, Windows
from edgemed.core.spec import Preprocessing
from edgemed.core.spec.data import DataSpec
from edgemed.train.data.dataset import Dataset


def _labels_from(y: np.ndarray, names: np.ndarray | None, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer labels and their names; string labels are indexed in sorted order."""
    if y.dtype.kind in "US":
        names_sorted = tuple(sorted(set(y.tolist())))
        return np.searchsorted(np.array(names_sorted), y).astype(np.int64), names_sorted
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{source}: labels y must be whole numbers, got non-integer floats")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DataError(f"{source}: labels y must be integers or strings, got dtype {y.dtype}")
    if names is not None:
        return y, tuple(str(v) for v in names)
    if y.size and y.min() < 0:
        raise DataError(f"{source}: labels y must be >= 0, found {int(y.min())}")
    k = max(int(y.max()) + 1 if y.size else 0, 2)
    return y, tuple(str(i) for i in range(k))


def dataset_from_windows(win: Windows, source: str) -> Dataset:
    """A training set from model-ready samples read by any reader (`edgemed.core.readers`): labels as integers
    with their names; groups (patients) as given, else one per sample."""
    if win.y is None:
        raise DataError(f"{source}: no labels; training needs y (an .npz array, y.npy beside X.npy, a CSV label "
                        "column or class sub-folders)")
    y = np.asarray(win.y).reshape(-1)
    if y.dtype.kind in "US" and y.size and all(str(v).lstrip("-").isdigit() for v in y):
        y = y.astype(np.int64)  # whole-number labels (a CSV column) are class indices
    y, labels = _labels_from(y, win.label_names, source)
    groups = win.groups if win.groups is not None else np.arange(len(y))
    spec = DataSpec(labels=labels, layout=win.layout, channel_names=win.channel_names,
                    preprocessing=win.preprocessing or Preprocessing())
    return Dataset(X=win.X, y=y, groups=np.asarray(groups).astype(str), source=source, sha256=win.sha256 or "",
                   spec=spec, lengths=win.lengths)


def load_samples(path: Path, reader: Reader) -> Dataset:
    """Model-ready samples with labels: `.npz` (X, y; optional groups, lengths, label_names, channel_names), `X.npy`
    with `y.npy` (and optionally `groups.npy`, `lengths.npy`) beside it, or CSV sequences (one row per time step;
    a `group` column, when present, names the patient)."""
    win = reader.read_windows(path, siblings=True)
    if win.y is None:
        expected = (f"its labels in {path.with_name('y.npy')}" if path.suffix == ".npy"
                    else "X and y (groups, lengths optional)")
        raise DataError(f"{path}: missing array(s) ['y']; expected {expected}")
    return dataset_from_windows(win, str(path))
