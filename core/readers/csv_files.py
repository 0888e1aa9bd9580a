"""CSV files: a raw signal (one column per lead, named in the first row, and an optional time column) or sequences
(one row per time step, grouped by a `sequence_id` column, with a `label`). The first row decides: a file with a
`sequence_id` column holds sequences. Bounded readers: `csv_table` and `csv_sequences`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.digest import file_sha256
from edgemed.core.errors import DataError
from edgemed.core.readers.base import RECORDING, WINDOWS, RawRecording, Reader, Windows
from edgemed.core.readers.csv_sequences import read_sequence_csv
from edgemed.core.readers.csv_table import read_table
from edgemed.core.spec import Preprocessing, Window

TIME_COLUMNS = ("time", "time_s", "sample", "index")
ID_COLUMN = "sequence_id"


def header(path: Path) -> list[str]:
    """The column names of the first row (at most 64 KB read)."""
    first = next(iter(read_bounded_line(path).splitlines()), "")  # \n, \r\n or \r (old Mac) line ends
    try:
        return [h.strip() for h in next(csv.reader([first]), [])]
    except csv.Error as exc:
        raise DataError(f"{path}: its first row is not valid CSV ({exc}); it must name the columns, one line ending "
                        "in a newline") from exc


def read_bounded_line(path: Path, limit: int = 2**16) -> str:
    with open(path, "rb") as f:
        return f.readline(limit).decode("utf-8", errors="replace")


class CsvReader(Reader):
    name = "csv"
    description = "a .csv file (a signal with a column per lead, or sequences with a sequence_id column)"
    suffixes = (".csv",)
    limits = ("input_mb", "csv_rows", "array_mb")
    gives = (RECORDING, WINDOWS)

    def holds(self, path: Path) -> str:
        return WINDOWS if ID_COLUMN in header(path) else RECORDING

    def read_recording(self, path: Path, sampling_rate_hz: float | None = None) -> RawRecording:
        def choose(head: list[str]) -> tuple[list[str], list[str]]:
            names = [h for h in head if h.lower() not in TIME_COLUMNS]
            if not names:
                raise DataError(f"{path}: no lead columns; the first row must name the leads (e.g. MLII,V1), one "
                                "column each, with an optional time column")
            return names + [h for h in head if h.lower() in TIME_COLUMNS], []

        table = read_table(path, choose, DataError)
        names = [h for h in table.numeric if h.lower() not in TIME_COLUMNS]
        for column in table.numeric[len(names):]:
            times = table.column(column)
            if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
                raise DataError(f"{path}: the {column!r} column must hold finite, increasing times (a NaN, a repeat "
                                "or a step back was found); fix the file or drop the column")
        values = np.ascontiguousarray(table.numbers[:, : len(names)].T)
        return RawRecording(path.stem, values, sampling_rate_hz, names, where=str(path))

    def read_windows(self, path: Path, features: tuple[str, ...] | None = None, require_label: bool = True,
                     id_column: str = ID_COLUMN, label_column: str = "label", time_column: str = "time",
                     **options: Any) -> Windows:
        seqs = read_sequence_csv(path, id_column, label_column, time_column, require_label=require_label,
                                 features=features)
        labels = np.array(seqs.labels) if seqs.labels is not None else None
        return Windows(seqs.X, f"{path.name}: {len(seqs.ids)} sequences", y=labels, groups=np.array(seqs.groups),
                       lengths=seqs.lengths,
                       ids=list(seqs.ids), channel_names=tuple(seqs.features), layout="batch,time,feature",
                       preprocessing=Preprocessing(window=Window("stay")), sha256=file_sha256(path))


__all__ = ["CsvReader", "TIME_COLUMNS", "header"]
