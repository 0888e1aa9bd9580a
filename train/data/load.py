"""One entry point, `load_data`, that picks the source from the `--data` argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgemed.core.errors import DataError
from edgemed.train.data.arrays import load_csv, load_npz
from edgemed.train.data.dataset import Dataset
from edgemed.train.data.synthetic_ecg import synthetic_ecg
from edgemed.train.data.synthetic_frames import synthetic_frames
from edgemed.train.data.synthetic_vitals import synthetic_vitals
from edgemed.train.data.wfdb_source import load_wfdb

SYNTHETIC_SOURCES = {
    "synthetic-ecg": synthetic_ecg,
    "synthetic-vitals": synthetic_vitals,
    "synthetic-frames": synthetic_frames,
}


def load_data(source: str, **options: Any) -> Dataset:
    """Load `source`: a synthetic generator name, a WFDB folder, a `.npz`/`.npy` file or a `.csv` file.

    `options` go to the matching loader; options that do not apply to that source are ignored, so one
    CLI can pass its whole set.
    """
    import inspect

    if source in SYNTHETIC_SOURCES:
        loader = SYNTHETIC_SOURCES[source]
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(
                f"{source}: no such file or folder; use a WFDB folder, a .npz/.npy/.csv file, or one of "
                f"{', '.join(SYNTHETIC_SOURCES)}"
            )
        if path.is_dir():
            loader, options = load_wfdb, {"folder": path, **options}
        elif path.suffix in (".npz", ".npy"):
            loader, options = load_npz, {"path": path, **options}
        elif path.suffix == ".csv":
            loader, options = load_csv, {"path": path, **options}
        else:
            raise DataError(f"{source}: unsupported file type {path.suffix!r}; use .npz, .npy, .csv or a WFDB folder")
    accepted = inspect.signature(loader).parameters
    return loader(**{k: v for k, v in options.items() if k in accepted and v is not None})
