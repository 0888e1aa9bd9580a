"""Inputs for `edgemed run`: arrays from .npy/.npz, sequences from CSV, rhythm windows or a signal from a WFDB
record, images. (Beat models read raw recordings beat by beat: `edgemed.runtime.beats`.)

`.npy`/`.npz`/CSV hold model-ready samples (already filtered and resampled as the spec says). A WFDB record
is raw: it is band-pass filtered and resampled as the spec says (`edgemed.core.conditioning`, numpy only) and cut
into the spec's rhythm windows here. Channels are matched by
name wherever the file names them (CSV columns, WFDB leads, an .npz `channel_names` array), never by position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemed.core import wfdb
from edgemed.core.arrays_io import load_npy, load_npz
from edgemed.core.conditioning import condition, to_conditioned
from edgemed.core.csv_sequences import read_sequence_csv
from edgemed.core.errors import DataError, EdgemedError, InputError
from edgemed.core.images import is_image, list_image_folder, read_images
from edgemed.core.spec import ModelSpec
from edgemed.core.windows import rhythm_windows
from edgemed.runtime.validate import positive_rate

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


def select_leads(record: wfdb.Record, spec: ModelSpec, where: str) -> np.ndarray:
    """The record's signals in the model's channel order, chosen by lead name."""
    wanted = list(spec.channel_names)
    if not wanted:
        count = spec.signal.shape[1] if isinstance(spec.signal.shape[1], int) else None
        raise InputError(f"{where}: the model records no lead names, so its {count} lead(s) cannot be matched "
                         "to the record's by name; export a model trained by edgemed")
    missing = [c for c in wanted if c not in record.names]
    if missing:
        raise InputError(f"{where}: has leads {record.names}; the model needs {wanted} (missing {missing})")
    return record.signal[[record.names.index(c) for c in wanted]]


def conditioned_signal(base: Path, spec: ModelSpec) -> tuple[np.ndarray, float, float, float]:
    """A WFDB record's leads (by name), band-passed and resampled as the spec says (`edgemed.core.conditioning`);
    (signal, rate, source rate, conditioning delay in seconds)."""
    try:
        record = wfdb.read_record(base)
    except DataError as exc:
        raise InputError(str(exc)) from exc
    where = f"record {base.name}"
    sig = select_leads(record, spec, where)
    if not np.isfinite(sig).all():
        raise InputError(f"{where}: the signal holds invalid (missing) samples; this runtime does not fill gaps")
    fs = check_raw_rate(spec, record.fs, where)
    sig, delay = condition(sig, fs, spec.preprocessing)
    return sig, spec.preprocessing.sampling_rate_hz or fs, fs, delay


def _wfdb_record(base: Path, spec: ModelSpec, whole_signal: bool) -> RunInput:
    """A record as one signal (streaming), or cut into rhythm windows around its rhythm annotations (beat models
    read records beat by beat: `edgemed.runtime.beats`)."""
    sig, rate, fs, delay = conditioned_signal(base, spec)
    name = base.name
    if whole_signal:
        return RunInput(sig[None], f"WFDB record {name} (whole signal)", sampling_rate_hz=rate)
    window = spec.preprocessing.window
    if window is None or window.kind != "rhythm":
        raise InputError(f"the model's spec states no rhythm window ({window}); pass model-ready arrays")
    try:
        ann = wfdb.read_annotations(base)
    except DataError as exc:
        raise InputError(f"{exc}; windows are cut around its annotations") from exc
    samples = to_conditioned(ann.sample, fs, rate, delay)
    x, truth, starts = rhythm_windows(sig, samples, ann.aux, window.length(rate))
    ids = [f"{name}:{s}" for s in starts]
    kind = window.kind
    if len(x) == 0:
        raise InputError(f"record {name}: no {kind} windows")
    unknown = sorted(set(truth) - set(spec.labels))
    return RunInput(x, f"WFDB record {name}: {len(x)} {kind} windows", truth=None if unknown else truth, ids=ids,
                    sampling_rate_hz=rate)


IMAGE_LAYOUT = "batch,channel,height,width"


def _images(path: Path, spec: ModelSpec) -> RunInput:
    """One image, a folder of images, or an ImageFolder (class sub-folders give the true labels)."""
    if spec.signal.layout != IMAGE_LAYOUT or not isinstance(spec.signal.shape[1], int):
        raise InputError(f"{path}: images need an image model (input laid out {IMAGE_LAYOUT}); this model takes "
                         f"{spec.signal.layout or list(spec.signal.shape)}")
    channels, size = spec.signal.shape[1], spec.preprocessing.resize
    if path.is_file():
        return RunInput(read_images([path], channels, size), f"image {path.name}", ids=[path.name])
    truth = None
    if any(p.is_dir() for p in path.iterdir()):
        items, _ = list_image_folder(path)
        files, truth = [p for p, _ in items], [c for _, c in items]
    else:
        files = sorted(p for p in path.iterdir() if is_image(p))
        strays = sorted(p.name for p in path.iterdir() if not p.name.startswith(".") and not is_image(p))
        if strays:
            raise InputError(f"{path}: not PNG or JPEG images: {', '.join(strays[:5])}; remove them")
        if not files:
            raise InputError(f"{path}: no PNG or JPEG images")
    if truth is not None and set(truth) - set(spec.labels):
        truth = None  # class folders named otherwise than the model's labels: predictions only
    return RunInput(read_images(files, channels, size), f"{path.name}: {len(files)} images", truth=truth,
                    ids=[str(p.relative_to(path)) for p in files])


def read_input(path: Path | str, spec: ModelSpec, whole_signal: bool = False) -> RunInput:
    """Load `path` for `spec`; `whole_signal` (streaming) keeps a record as one continuous signal."""
    path = Path(path)
    try:
        return _read(path, spec, whole_signal)
    except InputError:
        raise
    except EdgemedError as exc:
        raise InputError(str(exc)) from exc


def _read(path: Path, spec: ModelSpec, whole_signal: bool) -> RunInput:
    if path.suffix == ".npy":
        x = load_npy(path)
        return RunInput(x, f"{path.name}: array {list(x.shape)}")
    if path.suffix == ".npz":
        arrays = load_npz(path, allow_text=("y", "label_names", "channel_names", "ids"))
        key = "X" if "X" in arrays else "x" if "x" in arrays else None
        if key is None:
            raise InputError(f"{path}: no array named X (found {sorted(arrays)})")
        x = arrays[key]
        if "channel_names" in arrays:
            x = order_channels(x, [str(c) for c in arrays["channel_names"]], spec, str(path))
        truth = _names(arrays["y"], spec, arrays.get("label_names")) if "y" in arrays else None
        if truth is not None and len(truth) != len(x):
            raise InputError(f"{path}: y has {len(truth)} labels for {len(x)} samples")
        ids = [str(v) for v in arrays["ids"]] if "ids" in arrays else []
        return RunInput(x, f"{path.name}: {key} {list(x.shape)}", lengths=arrays.get("lengths"), truth=truth, ids=ids)
    if is_image(path) or (path.is_dir() and not any(path.glob("*.hea"))):
        return _images(path, spec)
    if path.suffix == ".csv":
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if not spec.channel_names:
            raise InputError(f"{path}: the model records no channel names, so CSV columns cannot be matched by "
                             "name; pass the data as .npy/.npz")
        seqs = read_sequence_csv(path, require_label=False, features=spec.channel_names)
        return RunInput(seqs.X, f"{path.name}: {len(seqs.ids)} sequences", lengths=seqs.lengths, truth=seqs.labels,
                        ids=seqs.ids)
    base = path.with_suffix("") if path.suffix == ".hea" else path
    if base.with_name(base.name + ".hea").is_file():
        return _wfdb_record(base, spec, whole_signal)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    raise InputError(f"{path}: unsupported input; give a .npy, .npz, .csv file or a WFDB record "
                     "(its path without extension, or its .hea)")
