"""WFDB records with annotations (MIT-BIH and alike): beat windows by AAMI EC57 class, or rhythm windows."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from edgemed.core import wfdb
from edgemed.core.errors import DataError
from edgemed.core.signal import bandpass, resample
from edgemed.core.spec import BandpassFilter, DataSpec, Preprocessing, Window
from edgemed.core.windows import AAMI_CLASSES, AAMI_MAP, beat_windows, rhythm_windows
from edgemed.train.data.dataset import Dataset

DEFAULT_BANDPASS = BandpassFilter(low_hz=0.5, high_hz=40.0, order=2, zero_phase=True)
MIN_ECG_RATE_HZ = 50.0


def list_records(folder: Path) -> list[str]:
    """Record names from the RECORDS file, or every `.hea` header in the folder."""
    return wfdb.record_names(folder)


def read_record(folder: Path, name: str, leads: int | list[str] | None
                ) -> tuple[np.ndarray, float, list[str], wfdb.Annotations]:
    """Signal [leads, samples] in physical units, its rate, lead names and the `atr` annotations. `leads` is a
    list of lead names (chosen by name, in that order), a count (the record's first leads) or None (all)."""
    base = folder / name
    if not base.with_name(name + ".atr").exists():
        raise DataError(f"record {name}: no annotation file {base.with_name(name + '.atr')}; beat and rhythm "
                        "labels come from the .atr annotations")
    record = wfdb.read_record(base)
    ann = wfdb.read_annotations(base)
    if isinstance(leads, list):
        missing = [c for c in leads if c not in record.names]
        if missing:
            raise DataError(f"record {name}: has leads {record.names}, not {missing}; leads are matched by name, so "
                            "name leads every record has (--leads MLII) or leave this record out (--records)")
        rows = [record.names.index(c) for c in leads]
    else:
        if leads is not None and len(record.names) < leads:
            raise DataError(f"record {name}: has {len(record.names)} lead(s), {leads} requested")
        rows = list(range(len(record.names) if leads is None else leads))
    sig = record.signal[rows]
    if not np.isfinite(sig).all():
        raise DataError(f"record {name}: signal contains NaN (missing samples); choose other records")
    return sig, record.fs, [record.names[r] for r in rows], ann


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
    leads: int | list[str] | None = None,
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
    `leads`: lead names, or a count of leads taken from the first record and then found by name in the others.
    """
    folder = Path(folder)
    filter_spec = DEFAULT_BANDPASS if filtered else None
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of WFDB records")
    if task not in ("beats", "rhythm"):
        raise DataError(f"unknown WFDB task {task!r}; use 'beats' or 'rhythm'")
    names = records or list_records(folder)
    window = (Window("beat", before_s=before_s, after_s=after_s, centre="annotated R peak") if task == "beats"
              else Window("rhythm", seconds=window_s))
    xs, ys, gs = [], [], []
    rate, lead_names = None, []
    for name in names:
        # Leads are chosen by name: the first record fixes the names, every other record must have them.
        sig, fs, lead_names, ann = read_record(folder, name, lead_names or leads)
        if filter_spec is not None:
            sig = bandpass(sig, fs, filter_spec)
        if not MIN_ECG_RATE_HZ <= fs:
            raise DataError(f"record {name}: sampled at {fs:g} Hz; an ECG needs at least {MIN_ECG_RATE_HZ:g} Hz")
        target = sampling_rate_hz or fs
        sig = resample(sig, fs, target)
        scale = target / fs
        if rate is not None and rate != target:
            raise DataError(f"record {name}: rate {target} Hz differs from earlier records ({rate} Hz)")
        rate = target
        samples = np.round(np.asarray(ann.sample) * scale).astype(np.int64)
        if task == "beats":
            beats = np.array([i for i, sym in enumerate(ann.symbol) if sym in AAMI_MAP], np.int64)
            x, kept = beat_windows(sig, samples[beats], *window.offsets(target))
            y = [AAMI_MAP[ann.symbol[i]] for i in beats[kept]]
        else:
            x, y, _ = rhythm_windows(sig, samples, ann.aux, window.length(target))
        xs.append(x)
        ys.extend(y)
        gs.extend([name] * len(y))
    if not ys:
        raise DataError(f"{folder}: no {task} windows found in records {names}")
    labels = AAMI_CLASSES if task == "beats" else tuple(sorted(set(ys), key=lambda r: (-ys.count(r), r)))
    index = {c: i for i, c in enumerate(labels)}
    spec = DataSpec(labels=labels, layout="batch,lead,sample", channel_names=tuple(lead_names),
                    preprocessing=Preprocessing(sampling_rate_hz=rate, units="mV", bandpass=filter_spec, window=window),
                    signal_checks=("range", "flat", "clipping"))
    return Dataset(X=np.concatenate(xs), y=np.array([index[v] for v in ys]), groups=np.array(gs),
                   source=f"wfdb:{folder.resolve()}", sha256=_digest(folder, names), spec=spec)
