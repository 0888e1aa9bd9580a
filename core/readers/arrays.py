"""`.npy` and `.npz` files: a raw signal (a `.npy` of one or two dimensions: [samples] or [channels, samples]) or
model-ready samples (`X` [n, ...] with optional `y`, `groups`, `lengths`, `label_names`, `channel_names`, `ids`).
Read without pickles, every size checked before memory is allocated (`numpy_arrays`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.digest import file_sha256
from edgemed.core.errors import DataError
from edgemed.core.readers.base import RECORDING, WINDOWS, RawRecording, Reader, Windows
from edgemed.core.readers.numpy_arrays import load_npy, load_npz, npy_ndim

NPZ_TEXT = ("y", "groups", "label_names", "channel_names", "ids")
SIBLINGS = ("y", "groups", "lengths", "label_names")


class ArrayReader(Reader):
    name = "numpy"
    description = "a .npy or .npz array file"
    suffixes = (".npy", ".npz")
    limits = ("input_mb", "array_mb", "npy_header_bytes", "zip_ratio")
    archive_items = (".npz",)
    gives = (RECORDING, WINDOWS)

    def holds(self, path: Path) -> str:
        return RECORDING if path.suffix == ".npy" and npy_ndim(path) <= 2 else WINDOWS

    def read_recording(self, path: Path, sampling_rate_hz: float | None = None) -> RawRecording:
        x = load_npy(path)
        if x.dtype.kind not in "fiu":
            raise DataError(f"{path}: a raw signal must hold numbers, not {x.dtype}")
        x = x[None] if x.ndim == 1 else x
        if x.ndim != 2:
            raise DataError(f"{path}: shape {list(x.shape)}; a raw signal is [samples] or [channels, samples]")
        return RawRecording(path.stem, x.astype(np.float64, copy=False), sampling_rate_hz, None, where=str(path))

    def read_windows(self, path: Path, siblings: bool = False, **options: Any) -> Windows:
        """`siblings`: a `.npy` takes `y.npy`, `groups.npy`, `lengths.npy` and `label_names.npy` from beside it
        (the training layout)."""
        if path.suffix == ".npy":
            arrays = {"X": load_npy(path)}
            for key in SIBLINGS if siblings else ():
                candidate = path.with_name(f"{key}.npy")
                if candidate.exists():
                    arrays[key] = load_npy(candidate, allow_text=True)
        else:
            arrays = load_npz(path, allow_text=NPZ_TEXT)
        key = "X" if "X" in arrays else "x" if "x" in arrays else None
        if key is None:
            raise DataError(f"{path}: no array named X (found {sorted(arrays)})")
        x = arrays[key]
        text = {k: tuple(str(v) for v in arrays[k]) for k in ("label_names", "channel_names") if k in arrays}
        return Windows(x, f"{path.name}: {key} {list(x.shape)}", y=arrays.get("y"),
                       label_names=text.get("label_names"), groups=arrays.get("groups"),
                       lengths=arrays.get("lengths"), ids=[str(v) for v in arrays["ids"]] if "ids" in arrays else [],
                       channel_names=text.get("channel_names", ()), sha256=file_sha256(path))
