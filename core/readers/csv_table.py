"""One bounded CSV reader for every CSV edgemed takes (sequences, raw recordings).

Rows are parsed as they are read: numbers go straight into a float64 buffer and text cells are interned, so memory
stays near 8 bytes per number instead of a Python object per cell (a 7 MB file once cost 359 MB). Row count and
the buffer's size are checked while reading, against `csv_rows` and `array_mb`.
"""

from __future__ import annotations

import array
import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core.errors import EdgemedError
from edgemed.core.limits import check, check_file_size

CHECK_EVERY = 4096  # rows between limit checks


@dataclass
class Table:
    header: list[str]
    numeric: list[str]
    numbers: np.ndarray  # [rows, len(numeric)] float64; an empty cell is NaN
    text: dict[str, list[str]]  # one value per row for each text column (interned)

    def column(self, name: str) -> np.ndarray:
        return self.numbers[:, self.numeric.index(name)]


Chooser = Callable[[list[str]], tuple[list[str], list[str]]]


def read_table(path: Path, choose: Chooser, error: type[EdgemedError]) -> Table:
    """Read `path`; `choose(header)` names the numeric and the text columns (raising `error` for a bad header).
    A short or long row, a non-numeric number or an unreadable file raises `error` naming the line."""
    path = Path(path)
    check_file_size(path)
    values = array.array("d")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if len(set(header)) != len(header):
                raise error(f"{path}: duplicate column names in the header {header}")
            numeric, textual = choose(header)
            num_at = [header.index(c) for c in numeric]
            text_at = [header.index(c) for c in textual]
            interned: dict[str, str] = {}
            text: dict[str, list[str]] = {c: [] for c in textual}
            rows = 0
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise error(f"{path}, line {line}: {len(header)} columns expected, the row has {len(row)}")
                try:
                    values.extend(float(row[i]) if row[i].strip() else float("nan") for i in num_at)
                except ValueError as exc:
                    raise error(f"{path}, line {line}: non-numeric value in a numeric column ({exc})") from None
                for c, i in zip(textual, text_at, strict=True):
                    text[c].append(interned.setdefault(row[i], row[i]))
                rows += 1
                if rows % CHECK_EVERY == 0:
                    check("csv_rows", rows, str(path))
                    check("array_mb", len(values) * 8, f"{path}: parsed values", scale=2**20)
            check("csv_rows", rows, str(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise error(f"{path}: cannot read CSV ({exc})") from exc
    numbers = np.frombuffer(values, np.float64).reshape(rows, len(numeric)) if numeric else np.zeros((rows, 0))
    return Table(header, list(numeric), numbers, text)
