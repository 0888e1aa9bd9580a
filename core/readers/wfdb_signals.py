"""WFDB signal files, decoded with numpy alone: formats 16, 61, 80, 160, 212, 24 and 32; samples marked invalid by
their format become NaN. Sizes are checked against `edgemed.core.limits` before any array is allocated, and a
signal's checksum must agree with its header.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.limits import check, check_file_size
from edgemed.core.readers.wfdb_header import FORMATS, local_file, read_header


@dataclass
class Record:
    name: str
    signal: np.ndarray  # [channels, samples] float32, physical units
    fs: float
    names: list[str]
    units: list[str]
    comments: list[str]


def _decode(raw: bytes, fmt: int, count: int) -> np.ndarray:
    """`count` digital samples (int64) from the bytes of one signal file, in file order."""
    if fmt == 212:
        b = np.frombuffer(raw[: 3 * ((count + 1) // 2)], np.uint8).astype(np.int64)
        b = np.pad(b, (0, (-len(b)) % 3)).reshape(-1, 3)
        first = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
        second = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
        out = np.stack([first, second], axis=1).reshape(-1)[:count]
        return np.where(out > 2047, out - 4096, out)
    if fmt == 24:
        b = np.frombuffer(raw[: 3 * count], np.uint8).astype(np.int64).reshape(-1, 3)
        out = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(out >= 2**23, out - 2**24, out)
    dtype = {16: "<i2", 61: ">i2", 80: "u1", 160: "<u2", 32: "<i4"}[fmt]
    out = np.frombuffer(raw[: np.dtype(dtype).itemsize * count], dtype).astype(np.int64)
    return out - {80: 128, 160: 32768}.get(fmt, 0)


def read_record(base: Path | str, channels: int | None = None, verify_checksum: bool = True) -> Record:
    """Signals [channels, samples] in physical units (NaN where a sample is marked invalid)."""
    base = Path(base)
    header = read_header(base)
    where = f"record {base.name}"
    signals = header.signals[:channels] if channels else header.signals
    if channels is not None and len(header.signals) < channels:
        raise DataError(f"{where}: has {len(header.signals)} signal(s), {channels} requested")
    by_file: dict[str, list[int]] = {}
    for i, s in enumerate(header.signals):
        by_file.setdefault(s.file, []).append(i)
    n = header.n_samples
    out = None
    for file, members in by_file.items():
        if not any(i < len(signals) for i in members):
            continue
        specs = [header.signals[i] for i in members]
        fmts, offsets = {s.fmt for s in specs}, {s.offset for s in specs}
        if len(fmts) != 1 or len(offsets) != 1:
            raise DataError(f"{where}: signals in {file} mix formats or byte offsets, which is not supported")
        fmt, offset = fmts.pop(), offsets.pop()
        path = base.with_name(file)
        if not path.is_file():
            raise DataError(f"{where}: signal file {path} not found")
        local_file(path, where)
        size = check_file_size(path)
        if offset > size:
            raise DataError(f"{where}: {file}: the header's byte offset {offset:,} lies beyond the file's "
                            f"{size:,} bytes")
        width = FORMATS[fmt][0] * len(members)
        available = int((size - offset) / width) if size > offset else 0
        if n is None:
            n = available
        if n > available:
            raise DataError(f"{where}: {file} holds {available} samples per signal but the header announces {n} "
                            "(truncated file?)")
        check("array_mb", n * len(signals) * 4, where + ": signal", scale=2**20)
        with open(path, "rb") as f:
            f.seek(offset)
            raw = f.read(int(np.ceil(n * width)))
        digital = _decode(raw, fmt, n * len(members)).reshape(n, len(members)).T
        if out is None:
            out = np.empty((len(signals), n), np.float32)
        invalid = FORMATS[fmt][1]
        for row, i in enumerate(members):
            if i >= len(signals):
                continue
            s = header.signals[i]
            d = digital[row]
            if verify_checksum and s.checksum is not None and header.n_samples:
                total = int(d.sum()) & 0xFFFF
                if total != s.checksum & 0xFFFF:
                    raise DataError(f"{where}: signal {i} ({s.name}) does not match the header's checksum "
                                    "(corrupt or truncated data)")
            values = (d - s.baseline) / s.gain
            out[i] = np.where(d == invalid, np.nan, values)
    if out is None:
        raise DataError(f"{where}: no signals")
    return Record(header.record, out, header.fs, [s.name for s in signals], [s.units for s in signals],
                  header.comments)
