"""WFDB records with annotations (MIT-BIH and alike): beat windows by AAMI EC57 class, or rhythm windows."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec import BandpassFilter
from edgemed.train.data.dataset import Dataset
from edgemed.train.data.signal import bandpass, resample

AAMI_CLASSES = ("N", "S", "V", "F", "Q")
# AAMI EC57 grouping of MIT-BIH beat symbols.
AAMI_MAP = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("aAJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
DEFAULT_BANDPASS = BandpassFilter(low_hz=0.5, high_hz=40.0, order=2, zero_phase=True)


def _wfdb():
    try:
        import wfdb
    except ImportError as exc:  # pragma: no cover - wfdb is in the train extra
        raise DataError("reading WFDB records needs the wfdb package: pip install 'edgemed[train]'") from exc
    return wfdb


def list_records(folder: Path) -> list[str]:
    """Record names from the RECORDS file, or every `.hea` header in the folder."""
    index = folder / "RECORDS"
    if index.exists():
        names = [line.strip() for line in index.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.stem for p in folder.glob("*.hea"))
    if not names:
        raise DataError(f"{folder}: no WFDB records (no RECORDS file and no .hea headers)")
    return names


def read_record(folder: Path, name: str, leads: int | None) -> tuple[np.ndarray, float, list[str], object]:
    """Signal [leads, samples] in physical units, its rate, lead names and the `atr` annotation."""
    wfdb = _wfdb()
    base = folder / name
    if not base.with_suffix(".hea").exists():
        raise DataError(f"record {name}: header {base.with_suffix('.hea')} not found")
    if not base.with_suffix(".atr").exists():
        raise DataError(f"record {name}: no annotation file {base.with_suffix('.atr')}; beat and rhythm "
                        "labels come from the .atr annotations")
    try:
        record = wfdb.rdrecord(str(base))
        ann = wfdb.rdann(str(base), "atr")
    except Exception as exc:  # wfdb raises bare ValueError/OSError/etc. on malformed files
        raise DataError(f"record {name}: cannot read WFDB files: {exc}") from exc
    sig = np.asarray(record.p_signal, dtype=np.float32).T
    if leads is not None:
        if sig.shape[0] < leads:
            raise DataError(f"record {name}: has {sig.shape[0]} lead(s), {leads} requested")
        sig = sig[:leads]
    if not np.isfinite(sig).all():
        raise DataError(f"record {name}: signal contains NaN (missing samples); choose other records")
    return sig, float(record.fs), list(record.sig_name[: sig.shape[0]]), ann


def beat_counts(folder: Path | str, name: str) -> dict[str, int]:
    """AAMI class counts of one record's annotation file (all annotated beats, no windowing)."""
    _, _, _, ann = read_record(Path(folder), name, None)
    counts = Counter(AAMI_MAP[s] for s in ann.symbol if s in AAMI_MAP)
    return {c: counts.get(c, 0) for c in AAMI_CLASSES}


def _digest(folder: Path, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        for ext in (".hea", ".dat", ".atr"):
            path = folder / f"{name}{ext}"
            if path.exists():
                h.update(path.name.encode())
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def load_wfdb(
    folder: Path | str,
    *,
    task: str = "beats",
    records: list[str] | None = None,
    leads: int | None = None,
    sampling_rate_hz: float | None = None,
    filtered: bool = True,
    before_s: float = 0.9,
    after_s: float = 0.9,
    window_s: float = 10.0,
) -> Dataset:
    """Windows from WFDB records; groups are record names so splits stay patient-wise.

    task "beats": a window from `before_s` to `after_s` around every beat annotation, labelled by its
    AAMI class. task "rhythm": non-overlapping `window_s` windows lying wholly inside one rhythm episode
    (the `aux_note` of rhythm annotations, e.g. "(AFIB"), labelled by that rhythm. `filtered` applies a
    0.5-40 Hz zero-phase Butterworth band-pass to each whole record first (removes baseline wander).
    """
    folder = Path(folder)
    filter_spec = DEFAULT_BANDPASS if filtered else None
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of WFDB records")
    if task not in ("beats", "rhythm"):
        raise DataError(f"unknown WFDB task {task!r}; use 'beats' or 'rhythm'")
    names = records or list_records(folder)
    xs, ys, gs = [], [], []
    rate, lead_names = None, []
    for name in names:
        sig, fs, lead_names, ann = read_record(folder, name, leads)
        if filter_spec is not None:
            sig = bandpass(sig, fs, filter_spec)
        target = sampling_rate_hz or fs
        sig = resample(sig, fs, target)
        scale = target / fs
        if rate is not None and rate != target:
            raise DataError(f"record {name}: rate {target} Hz differs from earlier records ({rate} Hz)")
        rate = target
        samples = np.round(np.asarray(ann.sample) * scale).astype(np.int64)
        if task == "beats":
            x, y = _beat_windows(sig, samples, ann.symbol, int(round(before_s * target)), int(round(after_s * target)))
        else:
            x, y = _rhythm_windows(sig, samples, ann.aux_note, int(round(window_s * target)))
        xs.append(x)
        ys.extend(y)
        gs.extend([name] * len(y))
    if not ys:
        raise DataError(f"{folder}: no {task} windows found in records {names}")
    labels = AAMI_CLASSES if task == "beats" else tuple(sorted(set(ys), key=lambda r: (-ys.count(r), r)))
    index = {c: i for i, c in enumerate(labels)}
    window = (
        {"kind": "beat", "before_s": before_s, "after_s": after_s, "centre": "annotated R peak"}
        if task == "beats"
        else {"kind": "rhythm", "seconds": window_s}
    )
    return Dataset(
        X=np.concatenate(xs), y=np.array([index[v] for v in ys]), labels=labels, groups=np.array(gs),
        source=f"wfdb:{folder.resolve()}", sha256=_digest(folder, names), sampling_rate_hz=rate,
        units="mV", bandpass=filter_spec, window=window, channel_names=tuple(lead_names), layout="batch,lead,sample",
    )


def _beat_windows(sig, samples, symbols, before, after):
    keep = [
        (s, AAMI_MAP[sym])
        for s, sym in zip(samples, symbols, strict=True)
        if sym in AAMI_MAP and s - before >= 0 and s + after <= sig.shape[1]
    ]
    if not keep:
        return np.zeros((0, sig.shape[0], before + after), np.float32), []
    starts = np.array([s - before for s, _ in keep])
    idx = starts[:, None] + np.arange(before + after)[None, :]
    return sig[:, idx].transpose(1, 0, 2).copy(), [c for _, c in keep]


def _rhythm_windows(sig, samples, aux, length):
    changes = [(s, a.strip("(\x00 ")) for s, a in zip(samples, aux, strict=True) if a and a.startswith("(")]
    xs, ys = [], []
    for (start, rhythm), end in zip(changes, [s for s, _ in changes[1:]] + [sig.shape[1]], strict=True):
        for w in range(start, end - length + 1, length):
            xs.append(sig[:, w : w + length])
            ys.append(rhythm)
    if not xs:
        return np.zeros((0, sig.shape[0], length), np.float32), []
    return np.stack(xs), ys
