"""Generic array sources: `.npz` (X, y, optional groups, lengths, label_names), `.npy` with sibling files, and CSV."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
from edgemed.core.errors import DataError
from edgemed.train.data.dataset import Dataset


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    """X [n, ...], y [n]; optional groups [n], lengths [n] and label_names [k]."""
    if path.suffix == ".npy":
        return _load_npy(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc}); object arrays are refused") from exc
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
            try:
                arrays[key] = np.load(candidate, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(f"{candidate}: not a readable .npy file ({exc})") from exc
    if "y" not in arrays:
        raise DataError(f"{path}: a .npy input needs its labels in {path.with_name('y.npy')}")
    return _dataset(path, arrays)


def _dataset(path: Path, arrays: dict[str, np.ndarray]) -> Dataset:
    src = str(path)
    y, labels = _labels_from(np.asarray(arrays["y"]).reshape(-1), arrays.get("label_names"), src)
    n = len(y)
    groups = arrays.get("groups", np.arange(n))
    return Dataset(
        X=arrays["X"], y=y, labels=labels, groups=np.asarray(groups).astype(str), source=src,
        sha256=file_sha256(path), lengths=arrays.get("lengths"),
    )


def load_csv(path: Path, id_column: str = "sequence_id", label_column: str = "label",
             time_column: str | None = "time") -> Dataset:
    """One row per time step: a sequence-id column, a label column, numeric feature columns.

    Rows are grouped by sequence id (ordered by `time_column` when present); sequences are padded at the
    end to the longest and their lengths kept. A `group` column, when present, names the patient.
    """
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: no data rows")
    header = list(rows[0].keys())
    for col in (id_column, label_column):
        if col not in header:
            raise DataError(f"{path}: no {col!r} column; columns are {header}")
    skip = {id_column, label_column, "group", time_column}
    features = [c for c in header if c not in skip]
    if not features:
        raise DataError(f"{path}: no feature columns besides {sorted(c for c in skip if c)}")
    seqs: dict[str, list] = {}
    for line, row in enumerate(rows, start=2):
        try:
            values = [float(row[c]) if row[c] not in ("", None) else float("nan") for c in features]
            t = float(row[time_column]) if time_column in header else line
        except ValueError as exc:
            raise DataError(f"{path}, line {line}: non-numeric feature value ({exc})") from exc
        seqs.setdefault(row[id_column], []).append((t, values, row[label_column], row.get("group")))
    n, longest = len(seqs), max(len(s) for s in seqs.values())
    X = np.zeros((n, longest, len(features)), np.float32)
    lengths, y_raw, groups = np.zeros(n, np.int64), [], []
    for i, (sid, steps) in enumerate(seqs.items()):
        steps.sort(key=lambda s: s[0])
        labels_seen = {s[2] for s in steps}
        if len(labels_seen) != 1:
            raise DataError(f"{path}: sequence {sid!r} has several labels {sorted(labels_seen)}; one per sequence")
        X[i, : len(steps)] = [s[1] for s in steps]
        lengths[i] = len(steps)
        y_raw.append(steps[0][2])
        groups.append(steps[0][3] or sid)
    y_arr = np.array(y_raw)
    if all(v.lstrip("-").isdigit() for v in y_raw):
        y_arr = y_arr.astype(np.int64)
    y, labels = _labels_from(y_arr, None, str(path))
    return Dataset(
        X=X, y=y, labels=labels, groups=np.array(groups), source=str(path), sha256=file_sha256(path),
        lengths=lengths, channel_names=tuple(features),
    )
