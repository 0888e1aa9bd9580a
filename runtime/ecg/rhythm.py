"""Model inputs cut from a raw recording for a waveform model that is not a beat model: its leads chosen by name,
conditioned as the spec says (band-pass, resampling), then kept whole (streaming) or cut into rhythm windows around
the recording's rhythm annotations, each labelled by its rhythm."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemed.core import readers
from edgemed.core.errors import InputError
from edgemed.core.spec import ModelSpec
from edgemed.runtime.ecg.conditioning import check_raw_rate, condition, to_conditioned
from edgemed.runtime.ecg.recording import LeadMap, map_leads, model_leads_first
from edgemed.runtime.ecg.windows import rhythm_windows
from edgemed.runtime.model.inputs import RunInput


def select_leads(rec: readers.RawRecording, spec: ModelSpec, where: str, lead_map: LeadMap | None = None
                 ) -> np.ndarray:
    """The recording's signals in the model's channel order, chosen by lead name (`lead_map`: which of its leads
    stands for a model lead named otherwise)."""
    wanted = list(spec.channel_names)
    if not wanted:
        count = spec.signal.shape[1] if isinstance(spec.signal.shape[1], int) else None
        raise InputError(f"{where}: the model records no lead names, so its {count} lead(s) cannot be matched "
                         "to the record's by name; export a model trained by edgemed")
    rows, count = model_leads_first(rec.signal, map_leads(rec.names or [], lead_map, spec, where), spec, where)
    return rows[:count]


def conditioned_signal(rec: readers.RawRecording, spec: ModelSpec, lead_map: LeadMap | None = None
                       ) -> tuple[np.ndarray, float, float, float]:
    """A recording's leads (by name), band-passed and resampled as the spec says (`edgemed.runtime.ecg.conditioning`);
    (signal, rate, source rate, conditioning delay in seconds)."""
    where = rec.where or rec.name
    sig = select_leads(rec, spec, where, lead_map)
    if not np.isfinite(sig).all():
        raise InputError(f"{where}: the signal holds invalid (missing) samples; this runtime does not fill gaps")
    if rec.fs is None:
        raise InputError(f"{where}: states no sampling rate; give a recording that does (WFDB, EDF)")
    fs = check_raw_rate(spec, rec.fs, where)
    sig, delay = condition(sig, fs, spec.preprocessing)
    return sig, spec.preprocessing.sampling_rate_hz or fs, fs, delay


def rhythm_input(path: Path, spec: ModelSpec, whole_signal: bool, lead_map: LeadMap | None = None) -> RunInput:
    """A recording as one signal (streaming), or cut into rhythm windows around its rhythm annotations (beat models
    read recordings beat by beat: `edgemed.runtime.ecg.beats`)."""
    rec = readers.read_recording(path)
    sig, rate, fs, delay = conditioned_signal(rec, spec, lead_map)
    name = rec.name
    if whole_signal:
        return RunInput(sig[None], f"recording {name} (whole signal)", sampling_rate_hz=rate)
    window = spec.preprocessing.window
    if window is None or not window.cut_by_rhythm:
        raise InputError(f"the model's spec states no rhythm window ({window}); pass model-ready arrays")
    if rec.annotations is None:
        raise InputError(f"{rec.where or name}: no annotation file; windows are cut around its rhythm annotations")
    samples = to_conditioned(rec.annotations.sample, fs, rate, delay)
    x, truth, starts = rhythm_windows(sig, samples, rec.annotations.aux, window.length(rate))
    ids = [f"{name}:{s}" for s in starts]
    if len(x) == 0:
        raise InputError(f"record {name}: no {window.kind} windows")
    unknown = sorted(set(truth) - set(spec.labels))
    return RunInput(x, f"recording {name}: {len(x)} {window.kind} windows", truth=None if unknown else truth,
                    ids=ids, sampling_rate_hz=rate)
