"""WFDB headers, parsed strictly field by field against the WFDB header specification.

A sampling rate that is not a plain positive number within the limit (`1e9`, `0.01`... are refused rather than
misread), a signal file named with a path (`../x.dat`) or linking out of the record's folder, an unsupported
format, several samples per frame, skew, an integer of more than 12 digits, or a baseline outside any sample
format's range is an error naming the record and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.limits import check, check_file_size

MIN_RATE_HZ = 0.001
DEFAULT_GAIN = 200.0
FORMATS = {  # format -> (bytes per sample, invalid-sample marker); 212 packs two samples in three bytes
    16: (2, -(2**15)), 61: (2, -(2**15)), 80: (1, -128), 160: (2, -(2**15)), 212: (1.5, -2048),
    24: (3, -(2**23)), 32: (4, -(2**31)),
}
# MIT annotation codes (anntyp) to symbols, as in the WFDB library's ecgcodes.
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


def read_header(base: Path | str) -> Header:
    base = Path(base)
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
