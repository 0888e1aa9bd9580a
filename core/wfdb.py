"""WFDB records and MIT-format annotations, read with numpy alone and parsed strictly.

Headers are parsed field by field against the WFDB header specification: a sampling rate that is not a plain
positive number within the limit (`1e9`, `0.01`... are refused rather than misread), a signal file named with a
path (`../x.dat`), an unsupported format, several samples per frame, skew, or a checksum that disagrees with the
data is an error naming the record and field. Signal files may use formats 16, 61, 80, 160, 212, 24 and 32;
samples marked invalid by their format become NaN. Sizes are checked against `edgemed.core.limits` before any
array is allocated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.limits import check, check_file_size, limit

MIN_RATE_HZ = 0.001
DEFAULT_GAIN = 200.0
FORMATS = {  # format -> (bytes per sample, invalid-sample marker); 212 packs two samples in three bytes
    16: (2, -(2**15)), 61: (2, -(2**15)), 80: (1, -128), 160: (2, -(2**15)), 212: (1.5, -2048),
    24: (3, -(2**23)), 32: (4, -(2**31)),
}
# MIT annotation codes (anntyp) to symbols, as in the WFDB library's ecgcodes.
SYMBOLS = {0: " ", 1: "N", 2: "L", 3: "R", 4: "a", 5: "V", 6: "F", 7: "J", 8: "A", 9: "S", 10: "E", 11: "j", 12: "/",
           13: "Q", 14: "~", 16: "|", 18: "s", 19: "T", 20: "*", 21: "D", 22: '"', 23: "=", 24: "p", 25: "B", 26: "^",
           27: "t", 28: "+", 29: "u", 30: "?", 31: "!", 32: "[", 33: "]", 34: "e", 35: "n", 36: "@", 37: "x", 38: "f",
           39: "(", 40: ")", 41: "r"}
SKIP, NUM, SUB, CHN, AUX = 59, 60, 61, 62, 63
_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RATE = re.compile(rf"^({_NUMBER})(?:/({_NUMBER})(?:\((-?\d+)\))?)?$")
_FORMAT = re.compile(r"^(\d{1,6})(?:x(\d{1,6}))?(?::(-?\d{1,12}))?(?:\+(\d+))?$")
_GAIN = re.compile(rf"^(-?{_NUMBER})(?:\((-?\d+)\))?(?:/(\S+))?$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class SignalSpec:
    file: str
    fmt: int
    offset: int
    gain: float
    baseline: int
    units: str
    adc_zero: int
    checksum: int | None
    name: str


@dataclass
class Header:
    record: str
    fs: float
    n_samples: int | None
    signals: list[SignalSpec]
    comments: list[str] = field(default_factory=list)


@dataclass
class Record:
    name: str
    signal: np.ndarray  # [channels, samples] float32, physical units
    fs: float
    names: list[str]
    units: list[str]
    comments: list[str]


@dataclass
class Annotations:
    sample: np.ndarray  # int64
    symbol: list[str]
    aux: list[str]
    chan: np.ndarray
    num: np.ndarray
    sub: np.ndarray


MAX_INT_DIGITS = 12  # header integers (counts, offsets, baselines, checksums) fit in 12 digits


def _int(token: str, what: str, where: str) -> int:
    if not re.fullmatch(rf"-?\d{{1,{MAX_INT_DIGITS}}}", token):
        raise DataError(f"{where}: {what} {token[:40]!r} is not a whole number of at most {MAX_INT_DIGITS} digits")
    return int(token)


def local_file(path: Path, where: str) -> Path:
    """`path` (a header, signal, annotation or RECORDS file), refused when it is a link that leads out of its
    record folder: a crafted record must not make edgemed read /etc/passwd or another patient's file as data."""
    if path.is_symlink():
        folder = path.parent.resolve()
        target = path.resolve()
        if target.parent != folder and not target.is_relative_to(folder):
            raise DataError(f"{where}: {path.name} is a link to {target}, outside the record folder; copy the file "
                            "into the folder instead")
    return path


def parse_rate(token: str, where: str) -> float:
    """The sampling frequency field, strictly: a positive number (optionally /counter-frequency(base))."""
    match = _RATE.match(token)
    if not match:
        raise DataError(f"{where}: sampling frequency {token!r} is not a number")
    fs = float(match.group(1))
    if not MIN_RATE_HZ <= fs:
        raise DataError(f"{where}: sampling frequency {token} Hz is not a usable rate (at least {MIN_RATE_HZ} Hz)")
    check("rate_hz", fs, f"{where}: sampling frequency")
    return fs


def parse_header(text: str, where: str) -> Header:
    lines = text.splitlines()
    check("header_lines", len(lines), where)
    comments = [ln.lstrip("#").strip() for ln in lines if ln.lstrip().startswith("#")]
    body = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        raise DataError(f"{where}: empty header (no record line)")
    tokens = body[0].split()
    name = tokens[0]
    if "/" in name:
        raise DataError(f"{where}: multi-segment records ({name}) are not supported; convert to a single segment")
    if len(tokens) < 2:
        raise DataError(f"{where}: the record line names no signal count")
    nsig = _int(tokens[1], "signal count", where)
    if nsig < 1:
        raise DataError(f"{where}: the record has {nsig} signals; at least one is needed")
    check("channels", nsig, where)
    fs = parse_rate(tokens[2], where) if len(tokens) > 2 else 250.0
    n_samples = _int(tokens[3], "sample count", where) if len(tokens) > 3 else None
    if n_samples is not None and n_samples < 0:
        raise DataError(f"{where}: negative sample count {n_samples}")
    if len(body) - 1 < nsig:
        raise DataError(f"{where}: the record line announces {nsig} signals but {len(body) - 1} signal lines follow")
    signals = [_signal_line(body[1 + i], i, where) for i in range(nsig)]
    return Header(name, fs, n_samples or None, signals, comments)


def _signal_line(line: str, index: int, where: str) -> SignalSpec:
    tokens = line.split()
    here = f"{where}, signal {index}"
    if len(tokens) < 2:
        raise DataError(f"{here}: needs at least a file name and a format")
    file = tokens[0]
    if not _NAME.match(file) or file in (".", ".."):
        raise DataError(f"{here}: signal file {file!r} must be a plain file name beside the header (no paths)")
    fm = _FORMAT.match(tokens[1])
    if not fm:
        raise DataError(f"{here}: format {tokens[1]!r} is not a WFDB format field")
    fmt = int(fm.group(1))
    if fmt not in FORMATS:
        raise DataError(f"{here}: signal format {fmt} is not supported (supported: {sorted(FORMATS)})")
    if fm.group(2) and int(fm.group(2)) != 1:
        raise DataError(f"{here}: {fm.group(2)} samples per frame (multi-frequency records) are not supported")
    if fm.group(3) and int(fm.group(3)) != 0:
        raise DataError(f"{here}: skewed signals are not supported")
    offset = _int(fm.group(4) or "0", "byte offset", here)
    gain, baseline_token, units = DEFAULT_GAIN, None, "mV"
    if len(tokens) > 2:
        gm = _GAIN.match(tokens[2])
        if not gm:
            raise DataError(f"{here}: ADC gain {tokens[2]!r} is not a number")
        gain = float(gm.group(1)) or DEFAULT_GAIN
        baseline_token, units = gm.group(2), gm.group(3) or "mV"
    if not np.isfinite(gain) or gain <= 0:
        raise DataError(f"{here}: ADC gain {gain} must be a positive number")
    adc_zero = _int(tokens[4], "ADC zero", here) if len(tokens) > 4 else 0
    checksum = _int(tokens[6], "checksum", here) if len(tokens) > 6 else None
    baseline = _int(baseline_token, "baseline", here) if baseline_token is not None else adc_zero
    for what, value in (("baseline", baseline), ("ADC zero", adc_zero)):
        if abs(value) > 2**31:
            raise DataError(f"{here}: {what} {value} is outside the range of any WFDB sample format")
    name = " ".join(tokens[8:]) if len(tokens) > 8 else f"signal{index}"
    return SignalSpec(file, fmt, offset, gain, baseline, units, adc_zero, checksum, name)


def read_header(base: Path) -> Header:
    path = base.with_name(base.name + ".hea")
    if not path.is_file():
        raise DataError(f"record {base.name}: header {path} not found")
    local_file(path, f"record {base.name}")
    check_file_size(path)
    try:
        with open(path, "rb") as f:
            text = f.read(2**20).decode("latin-1")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse_header(text, str(path))


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


def read_annotations(base: Path | str, extension: str = "atr") -> Annotations:
    """MIT-format annotations (`record.atr`): sample, symbol, aux note (rhythm changes), chan, num, sub."""
    base = Path(base)
    path = base.with_name(f"{base.name}.{extension}")
    if not path.is_file():
        raise DataError(f"record {base.name}: no annotation file {path}")
    local_file(path, f"record {base.name}")
    check_file_size(path)
    data = path.read_bytes()
    words = np.frombuffer(data[: len(data) // 2 * 2], "<u2")
    samples, symbols, aux, chan, num, sub = [], [], [], [], [], []
    t, pos, cur_chan, cur_num = 0, 0, 0, 0
    while pos < len(words):
        w = int(words[pos])
        code, value = w >> 10, w & 0x3FF
        pos += 1
        if code == 0 and value == 0:
            break
        if code == SKIP:
            if pos + 2 > len(words):
                raise DataError(f"{path}: truncated annotation file")
            skip = (int(words[pos]) << 16) | int(words[pos + 1])
            t += skip - 2**32 if skip >= 2**31 else skip
            pos += 2
        elif code in (NUM, SUB, CHN):
            if not samples:
                raise DataError(f"{path}: a modifier precedes the first annotation")
            signed = value - 1024 if value > 511 else value  # num and subtyp are signed 10-bit fields
            if code == NUM:
                cur_num = num[-1] = signed
            elif code == SUB:
                sub[-1] = signed
            else:
                cur_chan = chan[-1] = value
        elif code == AUX:
            nbytes = value
            start = 2 * pos
            if start + nbytes > len(data) or not samples:
                raise DataError(f"{path}: malformed aux note")
            aux[-1] = data[start : start + nbytes].decode("latin-1").rstrip("\x00")
            pos += (nbytes + 1) // 2
        else:
            t += value
            samples.append(t)
            symbols.append(SYMBOLS.get(code, "?"))
            aux.append("")
            chan.append(cur_chan)
            num.append(cur_num)
            sub.append(0)
    return Annotations(np.asarray(samples, np.int64), symbols, aux, np.asarray(chan), np.asarray(num),
                       np.asarray(sub))


def is_record_name(name: str) -> bool:
    """A plain record name: no folder, no path tricks."""
    return bool(_NAME.match(name))


def is_record_folder(folder: Path) -> bool:
    """A folder of WFDB records: it has a RECORDS index or at least one `.hea` header."""
    return (folder / "RECORDS").is_file() or any(folder.glob("*.hea"))


def record_names(folder: Path) -> list[str]:
    """Record names from the RECORDS file, or every `.hea` header in the folder."""
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


__all__ = ["Annotations", "Header", "Record", "is_record_name", "limit", "parse_header", "read_annotations",
           "read_header", "read_record", "record_names"]
