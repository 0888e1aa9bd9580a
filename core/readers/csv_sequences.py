"""Sequences from CSV, one row per time step (numpy and the csv module only, shared by training and runtime).

Columns are found by name, never by position. Given the model's channel names (`features`), the CSV must have
exactly those feature columns, in any order: a missing or an unexpected column is an error naming it, and a
reordered file is read in the model's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.limits import check
from edgemed.core.readers.csv_table import read_table

RESERVED = ("group",)


@dataclass
class CsvSequences:
    X: np.ndarray  # [n, longest, features], padded at the end with zeros
    lengths: np.ndarray
    ids: list[str]
    labels: list[str] | None  # one raw label per sequence, None when the file has no label column
    groups: list[str]
    features: tuple[str, ...]


def _feature_columns(path: Path, header: list[str], skip: set[str], features: Sequence[str] | None) -> list[str]:
    present = [c for c in header if c not in skip]
    if features is None:
        if not present:
            raise DataError(f"{path}: no feature columns")
        return present
    missing = [c for c in features if c not in header]
    extra = [c for c in present if c not in features]
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
        raise DataError(f"{path}: feature columns do not match the model's channels {list(features)}: "
                        f"{'; '.join(parts)}. Columns are matched by name; rename or drop them")
    return list(features)


def read_sequence_csv(path: Path, id_column: str = "sequence_id", label_column: str = "label",
                      time_column: str = "time", require_label: bool = True,
                      features: Sequence[str] | None = None) -> CsvSequences:
    """Group rows by `id_column` (ordered by `time_column` when present); the feature columns are `features` when
    given (matched by name), else every column except the id, label, time and `group` columns. Empty cells
    become NaN, which callers refuse."""
    path = Path(path)
    skip = {id_column, label_column, time_column, *RESERVED}
    found: dict[str, list[str]] = {}

    def choose(header: list[str]) -> tuple[list[str], list[str]]:
        for col in [id_column] + ([label_column] if require_label else []):
            if col not in header:
                raise DataError(f"{path}: no {col!r} column; columns are {header}")
        found["columns"] = _feature_columns(path, header, skip, features)
        numeric = found["columns"] + ([time_column] if time_column in header else [])
        return numeric, [c for c in (id_column, label_column, "group") if c in header]

    table = read_table(path, choose, DataError)
    rows = len(table.numbers)
    if not rows:
        raise DataError(f"{path}: no data rows")
    columns = found["columns"]
    has_label = label_column in table.header
    if time_column in table.header:
        times = table.column(time_column)
        bad = np.flatnonzero(~np.isfinite(times))
        if bad.size:
            raise DataError(f"{path}, line {int(bad[0]) + 2}: the {time_column!r} value is not a finite number; "
                            "every row needs its time to be ordered by")
    else:
        times = np.arange(rows, dtype=np.float64)
    ids, labels_of, groups_of = table.text[id_column], table.text.get(label_column), table.text.get("group")
    first: dict[str, int] = {}
    codes = np.fromiter((first.setdefault(v, len(first)) for v in ids), np.int64, rows)
    by_sequence = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(first))
    seqs = dict(zip(first, np.split(by_sequence, np.cumsum(counts)[:-1]), strict=True))
    longest = int(counts.max())
    check("array_mb", len(seqs) * longest * len(columns) * 4, f"{path}: padded sequences", scale=2**20)
    X = np.zeros((len(seqs), longest, len(columns)), np.float32)
    lengths = np.zeros(len(seqs), np.int64)
    labels, groups = [], []
    values = table.numbers[:, : len(columns)]
    for i, (sid, steps) in enumerate(seqs.items()):
        order = steps[np.argsort(times[steps], kind="stable")]
        if np.any(np.diff(times[order]) == 0):
            raise DataError(f"{path}: sequence {sid!r} has two rows with the same {time_column!r}; each time step "
                            "once")
        seen = {labels_of[r] for r in steps.tolist()} if has_label else set()
        if has_label and len(seen) != 1:
            raise DataError(f"{path}: sequence {sid!r} has several labels {sorted(map(str, seen))}; one per sequence")
        X[i, : len(steps)] = values[order]
        lengths[i] = len(steps)
        labels.append(labels_of[steps[0]] if has_label else None)
        groups.append((groups_of[steps[0]] if groups_of else "") or sid)
    return CsvSequences(X, lengths, list(seqs), labels if has_label else None, groups, tuple(columns))
