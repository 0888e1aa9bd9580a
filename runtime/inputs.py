"""Inputs for `edgemed run`: arrays from .npy/.npz, sequences from CSV, windows or a signal from a WFDB record.

`.npy`/`.npz`/CSV hold model-ready samples (already filtered and resampled as the spec says). A WFDB record
is raw: it is band-pass filtered and resampled as the spec says and cut into the spec's windows here, the one
place the runtime applies that preprocessing. WFDB reading needs the optional `wfdb` package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemed.core.csv_sequences import read_sequence_csv
from edgemed.core.errors import DataError, InputError
from edgemed.core.spec import ModelSpec


@dataclass
class RunInput:
    x: np.ndarray
    description: str
    lengths: np.ndarray | None = None
    truth: list[str] | None = None
    ids: list[str] = field(default_factory=list)
    sampling_rate_hz: float | None = None


def _names(y: np.ndarray, spec: ModelSpec, names: np.ndarray | None) -> list[str]:
    if y.dtype.kind in "US":
        return [str(v) for v in y]
    labels = [str(v) for v in names] if names is not None else list(spec.labels)
    if y.size and (y.min() < 0 or y.max() >= len(labels)):
        raise InputError(f"labels y range {int(y.min())}..{int(y.max())} but the model has {len(labels)} classes")
    return [labels[int(v)] for v in y]


def _wfdb_record(path: Path, spec: ModelSpec, whole_signal: bool) -> RunInput:
    try:
        import wfdb  # noqa: F401

        from edgemed.train.data.signal import bandpass, resample
        from edgemed.train.data.wfdb_source import load_wfdb, read_record
    except ImportError as exc:
        raise InputError("reading WFDB records needs the wfdb package: pip install wfdb "
                         "(or pass the windows as .npy/.npz)") from exc
    folder, name = path.parent, path.stem if path.suffix == ".hea" else path.name
    pre = spec.preprocessing
    leads = spec.inputs[0].shape[1] if isinstance(spec.inputs[0].shape[1], int) else None
    if whole_signal:
        sig, fs, _, _ = read_record(folder, name, leads)
        if pre.bandpass is not None:
            sig = bandpass(sig, fs, pre.bandpass)
        rate = pre.sampling_rate_hz or fs
        return RunInput(resample(sig, fs, rate)[None], f"WFDB record {name} (whole signal)", sampling_rate_hz=rate)
    window = pre.window or {}
    options = {"task": "beats" if window.get("kind") == "beat" else "rhythm", "records": [name], "leads": leads,
               "sampling_rate_hz": pre.sampling_rate_hz, "filtered": pre.bandpass is not None}
    if window.get("kind") == "beat":
        options.update(before_s=window["before_s"], after_s=window["after_s"])
    elif "seconds" in window:
        options["window_s"] = window["seconds"]
    try:
        ds = load_wfdb(folder, **options)
    except DataError as exc:
        raise InputError(str(exc)) from exc
    truth = [ds.labels[i] for i in ds.y]
    return RunInput(ds.X, f"WFDB record {name}: {len(ds)} {options['task']} windows", truth=truth,
                    ids=[f"{name}:{i}" for i in range(len(ds))], sampling_rate_hz=ds.sampling_rate_hz)


def read_input(path: Path | str, spec: ModelSpec, whole_signal: bool = False) -> RunInput:
    """Load `path` for `spec`; `whole_signal` (streaming) keeps a record as one continuous signal."""
    path = Path(path)
    if path.suffix == ".npy":
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable .npy array ({exc})") from exc
        return RunInput(x, f"{path.name}: array {list(x.shape)}")
    if path.suffix == ".npz":
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable .npz file ({exc})") from exc
        key = "X" if "X" in arrays else "x" if "x" in arrays else None
        if key is None:
            raise InputError(f"{path}: no array named X (found {sorted(arrays)})")
        truth = _names(arrays["y"], spec, arrays.get("label_names")) if "y" in arrays else None
        return RunInput(arrays[key], f"{path.name}: {key} {list(arrays[key].shape)}", lengths=arrays.get("lengths"),
                        truth=truth)
    if path.suffix == ".csv":
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            seqs = read_sequence_csv(path, require_label=False)
        except DataError as exc:
            raise InputError(str(exc)) from exc
        return RunInput(seqs.X, f"{path.name}: {len(seqs.ids)} sequences", lengths=seqs.lengths, truth=seqs.labels,
                        ids=seqs.ids)
    if path.with_suffix(".hea").is_file() or (path.suffix == ".hea" and path.is_file()):
        return _wfdb_record(path.with_suffix("") if path.suffix == ".hea" else path, spec, whole_signal)
    raise InputError(f"{path}: not found or unsupported; give a .npy, .npz, .csv file or a WFDB record "
                     "(its path without extension, or its .hea)")
