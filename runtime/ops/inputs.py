"""Inputs for `edgemed run`: arrays from .npy/.npz, sequences from CSV, rhythm windows or a signal from a WFDB
record, images. (Beat models read raw recordings beat by beat: `edgemed.runtime.ecg.beats`.)

`.npy`/`.npz`/CSV hold model-ready samples (already filtered and resampled as the spec says). A WFDB record
is raw: it is band-pass filtered and resampled as the spec says (`edgemed.runtime.ecg.conditioning`, numpy only) and cut
into the spec's rhythm windows here. Channels are matched by
name wherever the file names them (CSV columns, WFDB leads, an .npz `channel_names` array), never by position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemed.core import readers
from edgemed.core.errors import EdgemedError, InputError
from edgemed.core.spec import ModelSpec
from edgemed.runtime.ecg.recording import LeadMap
from edgemed.runtime.ecg.rhythm import rhythm_input
from edgemed.runtime.model.inputs import RunInput


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


def read_input(path: Path | str, spec: ModelSpec, whole_signal: bool = False,
               lead_map: LeadMap | None = None) -> RunInput:
    """Load `path` for `spec`; `whole_signal` (streaming) keeps a record as one continuous signal; `lead_map` says
    which of a recording's leads stands for a model lead named otherwise."""
    path = Path(path)
    try:
        reader = readers.find_reader(path)
        if readers.WINDOWS not in reader.gives:  # a recording only (WFDB, EDF): conditioned, then windowed
            if path.is_dir():
                raise InputError(f"{path}: a folder of records; give one record")
            return rhythm_input(path, spec, whole_signal, lead_map)
        if lead_map:
            raise InputError(f"{path}: `lead_map` picks the leads of a recording; this file holds model-ready "
                             "samples, matched to the model by their channel names")
        return _samples(path, reader.read_windows(path, **_window_options(spec)), spec)
    except InputError:
        raise
    except EdgemedError as exc:
        raise InputError(str(exc)) from exc
