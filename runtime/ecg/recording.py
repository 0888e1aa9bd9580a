"""Raw ECG recordings for beat models: a WFDB record (with its annotations, when present), a raw signal in `.npy`
or CSV (with a stated sampling rate), or EDF (through the optional `edfio` reader), and folders of WFDB records.

Leads are matched to the model's by name wherever the file names them (WFDB, CSV header, EDF labels); a `.npy`
array names nothing, so its rows are taken as the model's leads in the model's order, and their count must match.
Where a file names a lead otherwise (`II` or `ECG1` for a model trained on `MLII`), a lead map (model lead ->
the file's lead) says which to use: never guessed. The recording keeps every other named lead after the model's:
the beat detector uses them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core import readers
from edgemed.core.errors import DataError, InputError
from edgemed.core.readers import wfdb
from edgemed.core.spec import ModelSpec
from edgemed.runtime.model.validate import positive_rate


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


LeadMap = Mapping[str, str]  # the model's lead name -> the recording's lead that stands for it


def check_lead_map(lead_map: LeadMap | None, spec: ModelSpec) -> None:
    """Refuse a lead map naming a lead the model does not have, or one recording lead for two model leads."""
    if not lead_map:
        return
    wanted = list(spec.channel_names)
    unknown = [k for k in lead_map if k not in wanted]
    if unknown:
        raise InputError(f"`lead_map`: the model has no lead(s) {unknown}; its leads are {wanted}")
    sources = list(lead_map.values())
    if len(set(sources)) != len(sources):
        raise InputError(f"`lead_map`: one lead of the recording stands for two of the model's ({dict(lead_map)})")


def map_leads(names: list[str], lead_map: LeadMap | None, spec: ModelSpec, where: str) -> list[str]:
    """The recording's lead names with each lead that `lead_map` names renamed to the model's lead it stands for
    (a lead of the recording already called that is kept, renamed `NAME (unmapped)`)."""
    if not lead_map:
        return list(names)
    check_lead_map(lead_map, spec)
    missing = [v for v in lead_map.values() if v not in names]
    if missing:
        raise InputError(f"{where}: has leads {names}, not {missing} (named by `lead_map`)")
    renamed = {source: model for model, source in lead_map.items()}
    return [renamed.get(n, f"{n} (unmapped)" if n in lead_map else n) for n in names]


def model_leads_first(rows: np.ndarray, names: list[str], spec: ModelSpec, where: str) -> tuple[np.ndarray, int]:
    """`rows` (one per lead `names` names) with the model's leads first, by name, then the others; and how many
    are the model's. A lead the model needs and `names` lacks is refused, with the `lead_map` hint."""
    wanted = list(spec.channel_names)
    if not wanted:
        raise InputError(f"{where}: the model records no lead names to match the file's {names} against")
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InputError(f"{where}: has leads {names}; the model needs {wanted} (missing {missing}): name the "
                         f"record's lead that stands for each with `lead_map` (MODEL=RECORD)")
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
        raise InputError(f"{where}: a raw signal does not state its sampling rate; pass `sampling_rate_hz`")
    return positive_rate(sampling_rate_hz, f"{where}: sampling rate")


def is_recording(path: Path) -> bool:
    """A path `read_recording` can read: a WFDB record, or a file that holds a raw signal."""
    try:
        return readers.find_reader(path).holds(path) == readers.RECORDING and not Path(path).is_dir()
    except DataError:
        return False


def read_recording(path: Path | str, spec: ModelSpec, sampling_rate_hz: float | None = None,
                   lead_map: LeadMap | None = None) -> Recording:
    """One recording (any reader that holds one: WFDB, EDF, a raw .npy or CSV signal), its leads ordered for the
    model (`lead_map`: which of its leads stands for a model lead named otherwise). Raw files need
    `sampling_rate_hz` unless they state their rate; where the file states it, the given rate must be absent or
    agree."""
    path = Path(path)
    try:
        reader = readers.find_reader(path, readers.RECORDING)
        raw = reader.read_recording(path, sampling_rate_hz, **_channel_option(reader, spec, lead_map))
    except DataError as exc:
        raise InputError(str(exc)) from exc
    where = raw.where or str(path)
    if raw.fs is not None and sampling_rate_hz is not None and abs(sampling_rate_hz - raw.fs) > 1e-6 * raw.fs:
        raise InputError(f"{where}: its header says {raw.fs:g} Hz, not `sampling_rate_hz` {sampling_rate_hz:g}; "
                         "drop the option")
    if raw.names is None:  # a bare array names nothing: its rows are the model's leads, in the model's order
        if lead_map:
            raise InputError(f"{path}: a raw array names no leads for `lead_map` to pick: its rows are the model's "
                             f"leads {list(spec.channel_names)} in that order")
        leads = len(spec.channel_names) or 1
        if raw.signal.shape[0] != leads:
            raise InputError(f"{path}: shape {list(raw.signal.shape)}; a raw signal is [samples] or [leads, "
                             f"samples] with the model's {leads} lead(s) {list(spec.channel_names)} in that order")
        sig, count = raw.signal, leads
    else:
        sig, count = model_leads_first(raw.signal, map_leads(raw.names, lead_map, spec, where), spec, where)
    return Recording(raw.name, _finite(sig, where), _rate(raw.fs or sampling_rate_hz, where), count, raw.annotations)


def _channel_option(reader: readers.Reader, spec: ModelSpec, lead_map: LeadMap | None = None) -> dict:
    """Readers whose signals may differ in rate (EDF) read only the model's leads (by the file's names for them)."""
    import inspect

    accepts = "channels" in inspect.signature(reader.read_recording).parameters
    names = tuple((lead_map or {}).get(c, c) for c in spec.channel_names)
    return {"channels": names} if accepts and names else {}


def list_recordings(path: Path | str, records: list[str] | None = None) -> list[Path]:
    """Record paths: every WFDB record of a folder (its RECORDS file, else its headers), or the given names of
    them (`records`), or the one path given."""
    path = Path(path)
    if not path.is_dir():
        if records:
            raise InputError(f"{path}: `records` picks records of a folder; give the folder")
        if not is_recording(path):
            raise InputError(f"{path}: no such recording: give a WFDB record (its path without extension), a "
                             "folder of records, or a .npy, .csv or .edf signal")
        return [path]
    if records:
        bad = [n for n in records if not wfdb.is_record_name(n)]
        if bad:
            raise InputError(f"`records`: record names are plain names (no paths), not {bad[:3]}")
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
