"""WFDB records (a header, signal files and MIT annotations) and folders of them, read with numpy alone.

The format itself lives in `wfdb_header`, `wfdb_signals` and `wfdb_annotations`; this module names records and
folders and registers the reader: a record is given by its base path (or its `.hea`), a folder by its RECORDS
index or its headers.
"""

from __future__ import annotations

from pathlib import Path

from edgemed.core.errors import DataError
from edgemed.core.limits import check_file_size
from edgemed.core.readers.base import RECORDING, RawRecording, Reader
from edgemed.core.readers.wfdb_annotations import AUX, SKIP, SYMBOLS, Annotations, read_annotations
from edgemed.core.readers.wfdb_header import (
    _NAME,
    Header,
    SignalSpec,
    local_file,
    parse_header,
    parse_rate,
    read_header,
)
from edgemed.core.readers.wfdb_signals import Record, read_record


def is_record_name(name: str) -> bool:
    """A plain record name: no folder, no path tricks."""
    return bool(_NAME.match(name))


def is_record_folder(folder: Path | str) -> bool:
    """A folder of WFDB records: it has a RECORDS index or at least one `.hea` header."""
    folder = Path(folder)
    return (folder / "RECORDS").is_file() or any(folder.glob("*.hea"))


def record_names(folder: Path | str) -> list[str]:
    """Record names from the RECORDS file, or every `.hea` header in the folder."""
    folder = Path(folder)
    index = folder / "RECORDS"
    if index.is_file():
        local_file(index, str(folder))
        check_file_size(index)
        names = [line.strip() for line in index.read_text(errors="replace").splitlines() if line.strip()]
        bad = [n for n in names if not _NAME.match(n)]
        if bad:
            raise DataError(f"{index}: record names must be plain names (no paths), found {bad[:3]}")
    else:
        names = sorted(p.name[:-4] for p in folder.glob("*.hea"))
    if not names:
        raise DataError(f"{folder}: no WFDB records (no RECORDS file and no .hea headers)")
    return names


def record_base(path: Path | str) -> Path:
    """A record's base path (without extension), from the base itself or its `.hea`."""
    path = Path(path)
    return path.with_suffix("") if path.suffix == ".hea" else path


class WfdbReader(Reader):
    name = "wfdb"
    description = "a WFDB record (its path without extension, or its .hea) or a folder of records"
    limits = ("input_mb", "array_mb", "header_lines", "channels", "rate_hz")
    gives = (RECORDING,)

    def sniff(self, path: Path) -> bool:
        if path.is_dir():
            return is_record_folder(path)
        base = record_base(path)
        return base.with_name(base.name + ".hea").is_file()

    def holds(self, path: Path) -> str:
        return RECORDING

    def items(self, path: Path) -> list[Path]:
        return [path / n for n in record_names(path)] if path.is_dir() else [record_base(path)]

    def read_recording(self, path: Path, sampling_rate_hz: float | None = None) -> RawRecording:
        base = record_base(path)
        record = read_record(base)
        annotations = read_annotations(base) if base.with_name(base.name + ".atr").is_file() else None
        return RawRecording(base.name, record.signal, record.fs, list(record.names), annotations,
                            f"record {base.name}")


__all__ = ["AUX", "Annotations", "Header", "Record", "SKIP", "SYMBOLS", "SignalSpec", "WfdbReader", "is_record_folder",
           "is_record_name", "parse_header", "parse_rate", "read_annotations", "read_header", "read_record",
           "record_base", "record_names"]
