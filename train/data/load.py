"""One entry point, `load_data`, that picks the source from the `--data` argument."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgemed.core import readers
from edgemed.core.errors import DataError
from edgemed.core.spec import BeatContext
from edgemed.train.data.arrays import load_samples
from edgemed.train.data.beats import synthetic_beats
from edgemed.train.data.dataset import Dataset
from edgemed.train.data.images import load_image_folder
from edgemed.train.data.synthetic_ecg import synthetic_ecg
from edgemed.train.data.synthetic_frames import synthetic_frames
from edgemed.train.data.synthetic_fundus import synthetic_fundus
from edgemed.train.data.synthetic_vitals import synthetic_vitals
from edgemed.train.data.wfdb_source import load_wfdb

SYNTHETIC_SOURCES = {
    "synthetic-ecg": synthetic_ecg,
    "synthetic-beats": synthetic_beats,
    "synthetic-vitals": synthetic_vitals,
    "synthetic-frames": synthetic_frames,
    "synthetic-fundus": synthetic_fundus,
}


@dataclass
class DataOptions:
    """Options a data source may take; each source uses those that apply to it and ignores the rest."""

    samples: int | None = None  # synthetic sources
    records: list[str] | None = None  # WFDB
    task: str | None = None  # WFDB: beats or rhythm
    leads: int | list[str] | None = None  # WFDB names, or a count
    sampling_rate_hz: float | None = None  # ECG resampling
    filtered: bool | None = None  # WFDB band-pass
    window_s: float | None = None  # rhythm windows
    beat_window: tuple[float, float] | None = None  # beats: seconds before and after the R peak
    context: str | None = None  # beats: causal or full rhythm context
    template_beats: int | None = None  # beats: previous beats in the template (0: none)
    rr_features: tuple[str, ...] | None = None  # beats: which RR features (see BeatContext)
    beat_context: BeatContext | dict | None = None  # beats: exactly this context (a model's spec), overriding all
    image_size: int | None = None  # image folders and synthetic fundus

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def model_data_options(recorded: dict[str, Any] | None, spec: Any) -> dict[str, Any]:
    """Data options to re-read a model's data: those its provenance recorded, with a beat model's context taken
    from its spec (the defaults may have changed since it was trained)."""
    options = dict(recorded or {})
    ctx = getattr(getattr(spec, "preprocessing", None), "beat_context", None)
    if ctx is not None:
        options["beat_context"] = dataclasses.asdict(ctx)
    return options


def _file_loader(path: Path, opts: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The loader for a path, by the reader that takes it (`edgemed.core.readers`): a folder of recordings (beat
    or rhythm windows), an image folder, or a file of model-ready samples."""
    try:
        reader = readers.find_reader(path)
    except DataError as exc:
        raise DataError(f"{exc}; or one of {', '.join(SYNTHETIC_SOURCES)}") from None
    if path.is_dir():
        recordings = reader.holds(path) == readers.RECORDING
        return (load_wfdb if recordings else load_image_folder), {"folder": path, **opts}
    if readers.WINDOWS not in reader.gives:
        raise DataError(f"{path}: one recording; training reads a folder of annotated records, or samples")
    return load_samples, {"path": path, "reader": reader, **opts}


def load_data(source: str, seed: int = 0, options: DataOptions | dict | None = None, **extra: Any) -> Dataset:
    """Load `source`: a synthetic generator name, a WFDB folder, an image folder (one sub-folder per class), a
    `.npz`/`.npy` file or a `.csv` file. `options` (and keyword `extra`) go to the matching source; those that do
    not apply to it are ignored, so one CLI can pass its whole set."""
    given = options.to_dict() if isinstance(options, DataOptions) else dict(options or {})
    opts = {k: v for k, v in {**given, **extra}.items() if v is not None}
    if source in SYNTHETIC_SOURCES:
        loader, opts = SYNTHETIC_SOURCES[source], {"seed": seed, **opts}
    else:
        loader, opts = _file_loader(Path(source), opts)
    accepted = inspect.signature(loader).parameters
    return loader(**{k: v for k, v in opts.items() if k in accepted})
