"""WFDB records with annotations (MIT-BIH and alike): beat windows by AAMI EC57 class, or rhythm windows."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from edgemed.core import readers
from edgemed.core.errors import DataError
from edgemed.core.readers import wfdb
from edgemed.core.spec import BandpassFilter, BeatContext, Preprocessing, Window
from edgemed.core.spec.data import DataSpec
from edgemed.runtime.ecg.conditioning import condition, to_conditioned
from edgemed.runtime.ecg.ec57 import reference_beats
from edgemed.runtime.ecg.windows import AAMI_CLASSES, AAMI_MAP, rhythm_windows
from edgemed.train.data.beats import DEFAULT_BEAT_WINDOW, Recording, beat_dataset, make_beat_context
from edgemed.train.data.dataset import Dataset

CAUSAL_BANDPASS = BandpassFilter(low_hz=0.5, high_hz=40.0, order=2, zero_phase=False)
MIN_ECG_RATE_HZ = 50.0


def list_records(folder: Path) -> list[str]:
    """Record names from the RECORDS file, or every `.hea` header in the folder."""
    return wfdb.record_names(folder)


def read_record(folder: Path, name: str, leads: int | list[str] | None
                ) -> tuple[np.ndarray, float, list[str], wfdb.Annotations]:
    """Signal [leads, samples] in physical units, its rate, lead names and the `atr` annotations, read through the
    reader registry (`edgemed.core.readers`). `leads` is a list of lead names (chosen by name, in that order), a
    count (the record's first leads) or None (all)."""
    base = folder / name
    if not base.with_name(name + ".atr").exists():
        raise DataError(f"record {name}: no annotation file {base.with_name(name + '.atr')}; beat and rhythm "
                        "labels come from the .atr annotations")
    record = readers.read_recording(base)
    names = record.names or []
    if isinstance(leads, list):
        missing = [c for c in leads if c not in names]
        if missing:
            raise DataError(f"record {name}: has leads {names}, not {missing}; leads are matched by name, so "
                            "name leads every record has (`leads` MLII) or leave this record out (`records`)")
        rows = [names.index(c) for c in leads]
    else:
        if leads is not None and len(names) < leads:
            raise DataError(f"record {name}: has {len(names)} lead(s), {leads} requested")
        rows = list(range(len(names) if leads is None else leads))
    sig = record.signal[rows]
    if not np.isfinite(sig).all():
        raise DataError(f"record {name}: signal contains NaN (missing samples); choose other records")
    return sig, record.fs, [names[r] for r in rows], record.annotations


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
    beat_window: tuple[float, float] | None = None,
    window_s: float = 10.0,
    context: str | None = None,
    template_beats: int | None = None,
    beat_context: BeatContext | dict | None = None,
    rr_features: tuple[str, ...] | None = None,
) -> Dataset:
    """Samples from WFDB records; groups are record names so splits stay patient-wise.

    task "beats": one sample per annotated beat, the window from `beat_window[0]` seconds before its R peak to
    `beat_window[1]` after (default 0.9, 0.9), labelled by its AAMI class, with its rhythm context and template
    (`context`: causal or full, see `edgemed.train.data.beats.make_beat_context`; `beat_context`: exactly a
    model's). Every beat is kept: windows at a record's ends are edge-padded. task "rhythm": non-overlapping
    `window_s` windows lying wholly inside one rhythm episode (the `aux_note` of rhythm annotations, e.g.
    "(AFIB"), labelled by that rhythm.

    Records are conditioned causally (`edgemed.runtime.ecg.conditioning`): a 0.5-40 Hz Butterworth band-pass
    (`filtered`) run forward only, then resampling to `sampling_rate_hz`, exactly as the runtime does chunk by
    chunk. `leads`: lead names, or a count of leads taken from the first record and then found by name in the
    others.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of WFDB records")
    if task not in ("beats", "rhythm"):
        raise DataError(f"unknown WFDB task {task!r}; use 'beats' or 'rhythm'")
    names = records or list_records(folder)
    records_read, lead_names, pre = _conditioned(folder, names, leads, sampling_rate_hz, filtered)
    rate = pre.sampling_rate_hz
    source, digest = f"wfdb:{folder.resolve()}", _digest(folder, names)
    if task == "beats":
        before, after = beat_window or DEFAULT_BEAT_WINDOW
        window = Window("beat", before_s=before, after_s=after, centre="R peak")
        ctx = make_beat_context(context, template_beats, beat_context, rr_features)
        recordings = [Recording(r.name, r.signal, r.beats, r.classes) for r in records_read]
        return beat_dataset(recordings, rate, AAMI_CLASSES, window, ctx, pre, tuple(lead_names), source, digest)
    return _rhythm_dataset(records_read, pre, window_s, tuple(lead_names), source, digest, folder)


@dataclasses.dataclass
class _Conditioned:
    name: str
    signal: np.ndarray  # conditioned [leads, samples] at the common rate
    beats: np.ndarray  # reference beat positions, conditioned
    classes: list[str]
    samples: np.ndarray  # every annotation's position, conditioned
    aux: list[str]


def _conditioned(folder: Path, names: list[str], leads: int | list[str] | None, sampling_rate_hz: float | None,
                 filtered: bool) -> tuple[list[_Conditioned], list[str], Preprocessing]:
    """Every record read (through the reader registry) and conditioned as the runtime does: the same leads by
    name in each, one common rate."""
    rate, lead_names, pre, out = None, [], None, []
    for name in names:
        # Leads are chosen by name: the first record fixes the names, every other record must have them.
        sig, fs, lead_names, ann = read_record(folder, name, lead_names or leads)
        if not MIN_ECG_RATE_HZ <= fs:
            raise DataError(f"record {name}: sampled at {fs:g} Hz; an ECG needs at least {MIN_ECG_RATE_HZ:g} Hz")
        target = float(sampling_rate_hz or fs)
        if rate is not None and rate != target:
            raise DataError(f"record {name}: rate {target} Hz differs from earlier records ({rate} Hz)")
        rate = target
        pre = Preprocessing(sampling_rate_hz=rate, units="mV", bandpass=CAUSAL_BANDPASS if filtered else None,
                            causal=True)
        sig, delay = condition(sig, fs, pre)
        positions, classes = reference_beats(ann)
        out.append(_Conditioned(name, sig, to_conditioned(positions, fs, rate, delay), classes,
                                to_conditioned(ann.sample, fs, rate, delay), ann.aux))
    return out, lead_names, pre


def _rhythm_dataset(records: list[_Conditioned], pre: Preprocessing, window_s: float, lead_names: tuple[str, ...],
                    source: str, digest: str, folder: Path) -> Dataset:
    """Non-overlapping rhythm windows inside one rhythm episode each, labelled by that rhythm."""
    xs, ys, gs = [], [], []
    length = Window("rhythm", seconds=window_s).length(pre.sampling_rate_hz)
    for r in records:
        x, y, _ = rhythm_windows(r.signal, r.samples, r.aux, length)
        xs.append(x)
        ys.extend(y)
        gs.extend([r.name] * len(y))
    if not ys:
        raise DataError(f"{folder}: no rhythm windows found in records {[r.name for r in records]}")
    labels = tuple(sorted(set(ys), key=lambda v: (-ys.count(v), v)))
    index = {c: i for i, c in enumerate(labels)}
    spec = DataSpec(labels=labels, layout="batch,lead,sample", channel_names=lead_names,
                    preprocessing=dataclasses.replace(pre, window=Window("rhythm", seconds=window_s)),
                    signal_checks=("range", "flat", "clipping"))
    return Dataset(X=np.concatenate(xs), y=np.array([index[v] for v in ys]), groups=np.array(gs), source=source,
                   sha256=digest, spec=spec)
