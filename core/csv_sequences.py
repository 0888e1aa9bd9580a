"""Sequences from CSV, one row per time step (numpy and the csv module only, shared by training and runtime).

Columns are found by name, never by position. Given the model's channel names (`features`), the CSV must have
exactly those feature columns, in any order: a missing or an unexpected column is an error naming it, and a
reordered file is read in the model's order.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.limits import check, check_file_size

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
    check_file_size(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            if len(set(header)) != len(header):
                raise DataError(f"{path}: duplicate column names in the header {header}")
            rows = []
            for row in reader:
                rows.append(row)
                if len(rows) % 65536 == 0:
                    check("csv_rows", len(rows), str(path))
            check("csv_rows", len(rows), str(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: no data rows")
    needed = [id_column] + ([label_column] if require_label else [])
    for col in needed:
        if col not in header:
            raise DataError(f"{path}: no {col!r} column; columns are {header}")
    has_label = label_column in header
    columns = _feature_columns(path, header, {id_column, label_column, time_column, *RESERVED}, features)
    seqs: dict[str, list] = {}
    for line, row in enumerate(rows, start=2):
        if None in row or any(row.get(c) is None for c in header):
            raise DataError(f"{path}, line {line}: {len(header)} columns expected; the row has a different count")
        try:
            values = [float(row[c]) if row[c] != "" else float("nan") for c in columns]
            t = float(row[time_column]) if time_column in header else line
        except ValueError as exc:
            raise DataError(f"{path}, line {line}: non-numeric feature value ({exc})") from exc
        seqs.setdefault(row[id_column], []).append((t, values, row.get(label_column), row.get("group")))
    longest = max(len(s) for s in seqs.values())
    check("array_mb", len(seqs) * longest * len(columns) * 4, f"{path}: padded sequences", scale=2**20)
    X = np.zeros((len(seqs), longest, len(columns)), np.float32)
    lengths = np.zeros(len(seqs), np.int64)
    labels, groups = [], []
    for i, (sid, steps) in enumerate(seqs.items()):
        steps.sort(key=lambda s: s[0])
        seen = {s[2] for s in steps}
        if has_label and len(seen) != 1:
            raise DataError(f"{path}: sequence {sid!r} has several labels {sorted(map(str, seen))}; one per sequence")
        X[i, : len(steps)] = [s[1] for s in steps]
        lengths[i] = len(steps)
        labels.append(steps[0][2])
        groups.append(steps[0][3] or sid)
    return CsvSequences(X, lengths, list(seqs), labels if has_label else None, groups, tuple(columns))
