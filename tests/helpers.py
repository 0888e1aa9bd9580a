"""Test helpers: write small WFDB records (format 16 signals, MIT annotations) and snapshot folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgemed.core.readers.wfdb import AUX, SKIP, SYMBOLS

CODES = {symbol: code for code, symbol in SYMBOLS.items()}


def write_wfdb(folder: Path, name: str, signal: np.ndarray, fs: float, leads: list[str],
               beats: np.ndarray | None = None, symbols: list[str] | None = None, aux: dict[int, str] | None = None,
               gain: float = 200.0) -> Path:
    """A record `name` in `folder` (header, format-16 signal, and `.atr` when beats are given); returns its base."""
    digital = np.round(np.asarray(signal, np.float64) * gain).astype("<i2")
    (folder / f"{name}.dat").write_bytes(digital.T.tobytes())
    lines = [f"{name} {len(leads)} {fs:g} {digital.shape[1]}"]
    for i, lead in enumerate(leads):
        checksum = int(digital[i].astype(np.int64).sum()) & 0xFFFF
        checksum = checksum - 65536 if checksum > 32767 else checksum
        lines.append(f"{name}.dat 16 {gain:g}/mV 16 0 {int(digital[i, 0])} {checksum} 0 {lead}")
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    if beats is not None:
        write_annotations(folder / f"{name}.atr", np.asarray(beats), symbols or ["N"] * len(beats), aux or {})
    return folder / name


def write_annotations(path: Path, samples: np.ndarray, symbols: list[str], aux: dict[int, str]) -> None:
    out = bytearray()
    last = 0
    for i, (s, sym) in enumerate(zip(samples, symbols, strict=True)):
        diff = int(s) - last
        if diff > 1023 or diff < 0:
            out += (SKIP << 10).to_bytes(2, "little")
            out += ((diff >> 16) & 0xFFFF).to_bytes(2, "little") + (diff & 0xFFFF).to_bytes(2, "little")
            diff = 0
        out += ((CODES[sym] << 10) | diff).to_bytes(2, "little")
        last = int(s)
        if i in aux:
            text = aux[i].encode() + b"\x00"
            out += ((AUX << 10) | len(text)).to_bytes(2, "little") + text + (b"\x00" if len(text) % 2 else b"")
    out += b"\x00\x00"
    path.write_bytes(bytes(out))


def snapshot(root: Path) -> dict[str, str]:
    """Every entry below `root`: file sha256, link target or 'dir', so a test can prove nothing changed."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link->" + str(p.readlink())
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
