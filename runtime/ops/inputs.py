"""Inputs for `edgemed run`: arrays from .npy/.npz, sequences from CSV, rhythm windows or a signal from a WFDB
record, images. (Beat models read raw recordings beat by beat: `edgemed.runtime.ecg.beats`.)

`.npy`/`.npz`/CSV hold model-ready samples (already filtered and resampled as the spec says). A WFDB record
is raw: it is band-pass filtered and resampled as the spec says (`edgemed.runtime.ecg.conditioning`, numpy only) and cut
into the spec's rhythm windows here. Channels are matched by
name wherever the file names them (CSV columns, WFDB leads, an .npz `channel_names` array), never by position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemed.core import readers
from edgemed.core.errors import EdgemedError, InputError
from edgemed.core.spec import ModelSpec
from edgemed.runtime.ecg.conditioning import condition, to_conditioned
from edgemed.runtime.ecg.windows import rhythm_windows
from edgemed.runtime.model.validate import positive_rate

RESAMPLE_FACTOR = 64  # a raw signal's rate must be within this factor of the model's (when the spec sets no range)


@dataclass
class RunInput:
    x: np.ndarray
    description: str
    lengths: np.ndarray | None = None
    truth: list[str] | None = None
    ids: list[str] = field(default_factory=list)
    sampling_rate_hz: float | None = None


def _names(y: np.ndarray, spec: ModelSpec, names: np.ndarray | None) -> list[str]:
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind in "US":
        return [str(v) for v in y]
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise InputError(f"labels y must be integers or strings, got dtype {y.dtype}")
    labels = [str(v) for v in names] if names is not None else list(spec.labels)
    if y.size and (y.min() < 0 or y.max() >= len(labels)):
        raise InputError(f"labels y range {int(y.min())}..{int(y.max())} but the model has {len(labels)} classes")
    return [labels[int(v)] for v in y]


def channel_axis(spec: ModelSpec) -> int | None:
    """The main input's channel axis (from the normalisation or input range the spec records)."""
    pre = spec.preprocessing
    if pre.input_range is not None:
        return pre.input_range.axis
    return pre.normalization.axis if pre.normalization is not None else None


def order_channels(x: np.ndarray, given: list[str], spec: ModelSpec, where: str) -> np.ndarray:
    """Reorder `x`'s channel axis from the file's channel names to the model's; refuse missing or extra ones."""
    wanted = list(spec.channel_names)
    if not wanted:
        raise InputError(f"{where}: names its channels {given}, but the model records no channel names to match")
    missing = [c for c in wanted if c not in given]
    extra = [c for c in given if c not in wanted]
    if missing or extra or len(set(given)) != len(given):
        raise InputError(f"{where}: channels {given} do not match the model's {wanted}"
                         + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""))
    axis = channel_axis(spec)
    if axis is None or x.ndim <= axis or x.shape[axis] != len(given):
        raise InputError(f"{where}: cannot tell which axis holds the {len(given)} named channels")
    return np.take(x, [given.index(c) for c in wanted], axis=axis)


def check_raw_rate(spec: ModelSpec, fs: float, where: str) -> float:
    """The rate of a raw signal the runtime will resample: within the spec's accepted range, or within a factor
    of 64 of the model's rate."""
    fs = positive_rate(fs, f"{where}: sampling rate")
    target = spec.preprocessing.sampling_rate_hz
    lo, hi = spec.preprocessing.rate_range_hz or ((target / RESAMPLE_FACTOR, target * RESAMPLE_FACTOR) if target
                                                    else (fs, fs))
    if not lo <= fs <= hi:
        raise InputError(f"{where}: sampled at {fs:g} Hz, outside the {lo:g}-{hi:g} Hz this model accepts for "
                         f"resampling to {target:g} Hz")
    return fs


def select_leads(rec: readers.RawRecording, spec: ModelSpec, where: str) -> np.ndarray:
    """The recording's signals in the model's channel order, chosen by lead name."""
    wanted = list(spec.channel_names)
    if not wanted:
        count = spec.signal.shape[1] if isinstance(spec.signal.shape[1], int) else None
        raise InputError(f"{where}: the model records no lead names, so its {count} lead(s) cannot be matched "
                         "to the record's by name; export a model trained by edgemed")
    names = rec.names or []
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InputError(f"{where}: has leads {names}; the model needs {wanted} (missing {missing})")
    return rec.signal[[names.index(c) for c in wanted]]


def conditioned_signal(rec: readers.RawRecording, spec: ModelSpec) -> tuple[np.ndarray, float, float, float]:
    """A recording's leads (by name), band-passed and resampled as the spec says (`edgemed.runtime.ecg.conditioning`);
    (signal, rate, source rate, conditioning delay in seconds)."""
    where = rec.where or rec.name
    sig = select_leads(rec, spec, where)
    if not np.isfinite(sig).all():
        raise InputError(f"{where}: the signal holds invalid (missing) samples; this runtime does not fill gaps")
    if rec.fs is None:
        raise InputError(f"{where}: states no sampling rate; give a recording that does (WFDB, EDF)")
    fs = check_raw_rate(spec, rec.fs, where)
    sig, delay = condition(sig, fs, spec.preprocessing)
    return sig, spec.preprocessing.sampling_rate_hz or fs, fs, delay


def _recording(path: Path, spec: ModelSpec, whole_signal: bool) -> RunInput:
    """A recording as one signal (streaming), or cut into rhythm windows around its rhythm annotations (beat models
    read recordings beat by beat: `edgemed.runtime.ecg.beats`)."""
    rec = readers.read_recording(path)
    sig, rate, fs, delay = conditioned_signal(rec, spec)
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


IMAGE_LAYOUT = "batch,channel,height,width"


def _window_options(spec: ModelSpec) -> dict:
    """What readers of model-ready samples need from the model: image channels and size, CSV feature names."""
    channels = spec.signal.shape[1] if len(spec.signal.shape) > 1 else None
    return {"channels": channels if spec.signal.layout == IMAGE_LAYOUT and isinstance(channels, int) else 3,
            "size": spec.preprocessing.resize, "features": spec.channel_names or None, "require_label": False}


def _samples(path: Path, win: readers.Windows, spec: ModelSpec) -> RunInput:
    """Model-ready samples: channels put in the model's order by name, labels checked against the model's."""
    if win.layout == IMAGE_LAYOUT:
        if spec.signal.layout != IMAGE_LAYOUT:
            raise InputError(f"{path}: images need an image model (input laid out {IMAGE_LAYOUT}); this model "
                             f"takes {spec.signal.layout or list(spec.signal.shape)}")
        truth = [str(v) for v in win.y] if win.y is not None else None
        if truth is not None and set(truth) - set(spec.labels):
            truth = None  # class folders named otherwise than the model's labels: predictions only
        return RunInput(win.X, win.description, truth=truth, ids=win.ids)
    x = win.X
    if win.layout == "batch,time,feature" and not spec.channel_names:
        raise InputError(f"{path}: the model records no channel names, so CSV columns cannot be matched by name; "
                         "pass the data as .npy/.npz")
    if win.channel_names and list(win.channel_names) != list(spec.channel_names):
        x = order_channels(x, list(win.channel_names), spec, str(path))
    truth = _names(win.y, spec, win.label_names) if win.y is not None else None
    if truth is not None and len(truth) != len(x):
        raise InputError(f"{path}: y has {len(truth)} labels for {len(x)} samples")
    return RunInput(x, win.description, lengths=win.lengths, truth=truth, ids=win.ids)


def read_input(path: Path | str, spec: ModelSpec, whole_signal: bool = False) -> RunInput:
    """Load `path` for `spec`; `whole_signal` (streaming) keeps a record as one continuous signal."""
    path = Path(path)
    try:
        reader = readers.find_reader(path)
        if readers.WINDOWS not in reader.gives:  # a recording only (WFDB, EDF): conditioned, then windowed
            if path.is_dir():
                raise InputError(f"{path}: a folder of records; give one record")
            return _recording(path, spec, whole_signal)
        return _samples(path, reader.read_windows(path, **_window_options(spec)), spec)
    except InputError:
        raise
    except EdgemedError as exc:
        raise InputError(str(exc)) from exc
