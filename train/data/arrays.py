"""Generic array sources: `.npz` (X, y, optional groups, lengths, label_names), `.npy` with sibling files, and CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemed.core.arrays_io import load_npy
from edgemed.core.arrays_io import load_npz as read_npz
from edgemed.core.csv_sequences import read_sequence_csv
from edgemed.core.digest import file_sha256
from edgemed.core.errors import DataError
from edgemed.core.spec import DataSpec, Preprocessing, Window
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


def load_npz(path: Path) -> Dataset:
    """X [n, ...], y [n]; optional groups [n], lengths [n], label_names [k] and channel_names."""
    if path.suffix == ".npy":
        return _load_npy(path)
    arrays = read_npz(path, allow_text=("y", "groups", "label_names", "channel_names"))
    missing = {"X", "y"} - set(arrays)
    if missing:
        raise DataError(f"{path}: missing array(s) {sorted(missing)}; expected X and y (groups, lengths optional)")
    return _dataset(path, arrays)


def _load_npy(path: Path) -> Dataset:
    """`X.npy` with `y.npy` (and optionally `groups.npy`, `lengths.npy`) beside it."""
    arrays = {}
    for key in ("X", "y", "groups", "lengths", "label_names"):
        candidate = path if key == "X" else path.with_name(f"{key}.npy")
        if candidate.exists():
            arrays[key] = load_npy(candidate, allow_text=key != "X")
    if "y" not in arrays:
        raise DataError(f"{path}: a .npy input needs its labels in {path.with_name('y.npy')}")
    return _dataset(path, arrays)


def _dataset(path: Path, arrays: dict[str, np.ndarray]) -> Dataset:
    src = str(path)
    y, labels = _labels_from(np.asarray(arrays["y"]).reshape(-1), arrays.get("label_names"), src)
    n = len(y)
    groups = arrays.get("groups", np.arange(n))
    names = tuple(str(c) for c in arrays["channel_names"]) if "channel_names" in arrays else ()
    return Dataset(X=arrays["X"], y=y, groups=np.asarray(groups).astype(str), source=src, sha256=file_sha256(path),
                   spec=DataSpec(labels=labels, channel_names=names), lengths=arrays.get("lengths"))


def load_csv(path: Path, id_column: str = "sequence_id", label_column: str = "label",
             time_column: str = "time") -> Dataset:
    """One row per time step (see `core.csv_sequences`); a `group` column, when present, names the patient."""
    seqs = read_sequence_csv(path, id_column, label_column, time_column)
    y_arr = np.array(seqs.labels)
    if all(v.lstrip("-").isdigit() for v in seqs.labels):
        y_arr = y_arr.astype(np.int64)
    y, labels = _labels_from(y_arr, None, str(path))
    spec = DataSpec(labels=labels, layout="batch,time,feature", channel_names=seqs.features,
                    preprocessing=Preprocessing(window=Window("stay")))
    return Dataset(X=seqs.X, y=y, groups=np.array(seqs.groups), source=str(path), sha256=file_sha256(path), spec=spec,
                   lengths=seqs.lengths)
