"""Sequences from CSV, one row per time step (numpy and the csv module only, shared by training and runtime)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError


@dataclass
class CsvSequences:
    X: np.ndarray  # [n, longest, features], padded at the end with zeros
    lengths: np.ndarray
    ids: list[str]
    labels: list[str] | None  # one raw label per sequence, None when the file has no label column
    groups: list[str]
    features: tuple[str, ...]


def read_sequence_csv(path: Path, id_column: str = "sequence_id", label_column: str = "label",
                      time_column: str = "time", require_label: bool = True) -> CsvSequences:
    """Group rows by `id_column` (ordered by `time_column` when present); every other column except
    `label_column` and `group` is a numeric feature. Empty cells become NaN, which callers refuse."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: no data rows")
    header = list(rows[0].keys())
    needed = [id_column] + ([label_column] if require_label else [])
    for col in needed:
        if col not in header:
            raise DataError(f"{path}: no {col!r} column; columns are {header}")
    has_label = label_column in header
    features = [c for c in header if c not in {id_column, label_column, "group", time_column}]
    if not features:
        raise DataError(f"{path}: no feature columns")
    seqs: dict[str, list] = {}
    for line, row in enumerate(rows, start=2):
        try:
            values = [float(row[c]) if row[c] not in ("", None) else float("nan") for c in features]
            t = float(row[time_column]) if time_column in header else line
        except ValueError as exc:
            raise DataError(f"{path}, line {line}: non-numeric feature value ({exc})") from exc
        seqs.setdefault(row[id_column], []).append((t, values, row.get(label_column), row.get("group")))
    longest = max(len(s) for s in seqs.values())
    X = np.zeros((len(seqs), longest, len(features)), np.float32)
    lengths = np.zeros(len(seqs), np.int64)
    labels, groups = [], []
    for i, (sid, steps) in enumerate(seqs.items()):
        steps.sort(key=lambda s: s[0])
        seen = {s[2] for s in steps}
        if has_label and len(seen) != 1:
            raise DataError(f"{path}: sequence {sid!r} has several labels {sorted(seen)}; one per sequence")
        X[i, : len(steps)] = [s[1] for s in steps]
        lengths[i] = len(steps)
        labels.append(steps[0][2])
        groups.append(steps[0][3] or sid)
    return CsvSequences(X, lengths, list(seqs), labels if has_label else None, groups, tuple(features))
