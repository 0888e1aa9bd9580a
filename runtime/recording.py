"""Raw ECG recordings for beat models: a WFDB record (with its annotations, when present), a raw signal in `.npy`
or CSV (with a stated sampling rate), or EDF (through the optional `edfio` reader), and folders of WFDB records.

Leads are matched to the model's by name wherever the file names them (WFDB, CSV header, EDF labels); a `.npy`
array names nothing, so its rows are taken as the model's leads in the model's order, and their count must match.
The recording keeps every other named lead after the model's: the beat detector uses them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core import wfdb
from edgemed.core.arrays_io import load_npy
from edgemed.core.csv_table import read_table
from edgemed.core.errors import DataError, EdgemedError, InputError
from edgemed.core.limits import check, check_file_size
from edgemed.core.spec import ModelSpec
from edgemed.runtime.validate import positive_rate

RAW_SUFFIXES = (".npy", ".csv", ".edf")
TIME_COLUMNS = ("time", "time_s", "sample", "index")


@dataclass
class Recording:
    name: str
    signal: np.ndarray  # [leads, samples] float64 raw, physical units; the model's leads first, in its order
    fs: float
    model_leads: int  # rows of `signal` the model takes (the rest only help beat detection)
    annotations: wfdb.Annotations | None = None

    @property
    def duration_s(self) -> float:
        return self.signal.shape[1] / self.fs


def _ordered(rows: np.ndarray, names: list[str], spec: ModelSpec, where: str) -> tuple[np.ndarray, int]:
    """The model's leads (by name) first, then the others."""
    wanted = list(spec.channel_names)
    if not wanted:
        raise InputError(f"{where}: the model records no lead names to match the file's {names} against")
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InputError(f"{where}: has leads {names}; the model needs {wanted} (missing {missing})")
    order = [names.index(c) for c in wanted] + [i for i, c in enumerate(names) if c not in wanted]
    return rows[order], len(wanted)


def _finite(sig: np.ndarray, where: str) -> np.ndarray:
    if sig.ndim != 2 or sig.shape[1] == 0:
        raise InputError(f"{where}: no samples")
    if not np.isfinite(sig).all():
        bad = int(np.argwhere(~np.isfinite(sig))[0, 1])
        raise InputError(f"{where}: invalid (missing) samples, the first at sample {bad}; this runtime does not "
                         "fill gaps: cut the recording around them")
    return sig.astype(np.float64, copy=False)


def _rate(sampling_rate_hz: float | None, where: str) -> float:
    if sampling_rate_hz is None:
        raise InputError(f"{where}: a raw signal does not state its sampling rate; pass --sampling-rate HZ")
    return positive_rate(sampling_rate_hz, f"{where}: sampling rate")


def _wfdb(base: Path, spec: ModelSpec) -> Recording:
    try:
        record = wfdb.read_record(base)
    except DataError as exc:
        raise InputError(str(exc)) from exc
    where = f"record {base.name}"
    sig, count = _ordered(record.signal, record.names, spec, where)
    ann = None
    if base.with_name(base.name + ".atr").is_file():
        try:
            ann = wfdb.read_annotations(base)
        except DataError as exc:
            raise InputError(str(exc)) from exc
    return Recording(base.name, _finite(sig, where), record.fs, count, ann)


def _npy(path: Path, spec: ModelSpec, fs: float | None) -> Recording:
    x = load_npy(path)
    if x.dtype.kind not in "fiu":
        raise InputError(f"{path}: a raw signal must hold numbers, not {x.dtype}")
    x = x[None] if x.ndim == 1 else x
    leads = len(spec.channel_names) or 1
    if x.ndim != 2 or x.shape[0] != leads:
        raise InputError(f"{path}: shape {list(x.shape)}; a raw signal is [samples] or [leads, samples] with the "
                         f"model's {leads} lead(s) {list(spec.channel_names)} in that order")
    return Recording(path.stem, _finite(x, str(path)), _rate(fs, str(path)), leads)


def _csv(path: Path, spec: ModelSpec, fs: float | None) -> Recording:
    def choose(header: list[str]) -> tuple[list[str], list[str]]:
        names = [h for h in header if h.lower() not in TIME_COLUMNS]
        if not names:
            raise InputError(f"{path}: no lead columns; the first row must name the leads (e.g. MLII,V1), one "
                             "column each, with an optional time column")
        return names + [h for h in header if h.lower() in TIME_COLUMNS], []

    table = read_table(path, choose, InputError)
    names = [h for h in table.numeric if h.lower() not in TIME_COLUMNS]
    for column in table.numeric[len(names):]:
        times = table.column(column)
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise InputError(f"{path}: the {column!r} column must hold finite, increasing times (a NaN, a repeat or "
                             "a step back was found); fix the file or drop the column")
    values = table.numbers[:, : len(names)]
    sig, count = _ordered(np.ascontiguousarray(values.T), names, spec, str(path))
    return Recording(path.stem, _finite(sig, str(path)), _rate(fs, str(path)), count)


def _edf(path: Path, spec: ModelSpec) -> Recording:
    try:
        import edfio
    except ImportError as exc:
        raise InputError(f"{path}: reading EDF needs the edfio package: pip install 'edgemed[edf]'") from exc
    check_file_size(path)
    try:
        edf = edfio.read_edf(path)
        signals = [s for s in edf.signals if s.label.strip() in spec.channel_names]
        rates = {float(s.sampling_frequency) for s in signals}
        names = [s.label.strip() for s in signals]
        if len(rates) > 1:
            raise InputError(f"{path}: the model's leads are sampled at different rates {sorted(rates)}")
        fs = _rate(rates.pop(), str(path)) if rates else 1.0
        samples = max((round(float(s.sampling_frequency) * float(edf.duration)) for s in signals), default=0)
        check("array_mb", samples * 8 * len(signals), f"{path}: signal", scale=2**20)
        sig = np.stack([np.asarray(s.data, np.float64) for s in signals]) if signals else np.zeros((0, 0))
    except EdgemedError:
        raise
    except Exception as exc:  # edfio raises ValueError and others on malformed files
        raise InputError(f"{path}: not a readable EDF file ({type(exc).__name__}: {str(exc)[:200]})") from exc
    sig, count = _ordered(sig, names, spec, str(path))
    return Recording(path.stem, _finite(sig, str(path)), fs, count)


def is_recording(path: Path) -> bool:
    """A path `read_recording` can read: a WFDB record (base or .hea) or a raw signal file."""
    base = path.with_suffix("") if path.suffix == ".hea" else path
    return base.with_name(base.name + ".hea").is_file() or (path.is_file() and path.suffix in RAW_SUFFIXES)


def read_recording(path: Path | str, spec: ModelSpec, sampling_rate_hz: float | None = None) -> Recording:
    """One recording from a WFDB record, `.npy`, CSV or EDF file. Raw files need `sampling_rate_hz` (EDF states
    its own); for a WFDB record it must be absent or agree with the header."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix == ".hea" else path
    if base.with_name(base.name + ".hea").is_file():
        rec = _wfdb(base, spec)
        if sampling_rate_hz is not None and abs(sampling_rate_hz - rec.fs) > 1e-6 * rec.fs:
            raise InputError(f"record {base.name}: its header says {rec.fs:g} Hz, not --sampling-rate "
                             f"{sampling_rate_hz:g}; drop the option")
        return rec
    if not path.is_file():
        raise InputError(f"{path}: no such file or WFDB record")
    if path.suffix == ".npy":
        return _npy(path, spec, sampling_rate_hz)
    if path.suffix == ".csv":
        return _csv(path, spec, sampling_rate_hz)
    if path.suffix == ".edf":
        return _edf(path, spec)
    raise InputError(f"{path}: not a recording; give a WFDB record, or a .npy, .csv or .edf signal")


def list_recordings(path: Path | str, records: list[str] | None = None) -> list[Path]:
    """Record paths: every WFDB record of a folder (its RECORDS file, else its headers), or the given names of
    them (`records`), or the one path given."""
    path = Path(path)
    if not path.is_dir():
        if records:
            raise InputError(f"{path}: --records picks records of a folder; give the folder")
        if not is_recording(path):
            raise InputError(f"{path}: no such recording: give a WFDB record (its path without extension), a "
                             "folder of records, or a .npy, .csv or .edf signal")
        return [path]
    if records:
        bad = [n for n in records if not wfdb.is_record_name(n)]
        if bad:
            raise InputError(f"--records: record names are plain names (no paths), not {bad[:3]}")
        unknown = [n for n in records if not (path / f"{n}.hea").is_file()]
        if unknown:
            raise InputError(f"{path}: no record(s) {unknown} (no header file)")
        return [path / n for n in dict.fromkeys(records)]
    try:
        names = wfdb.record_names(path)
    except DataError as exc:
        raise InputError(str(exc)) from exc
    if not names:
        raise InputError(f"{path}: no WFDB records (no RECORDS file or .hea headers)")
    return [path / n for n in names]
