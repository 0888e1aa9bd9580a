"""What every file reader declares, and the one registry that training, `run`, `score`, `evaluate` and the monitor
ask which reader takes a path.

A reader turns one file format into one of two things:
- a `RawRecording`: continuous signals [channels, samples] in physical units, their channel names and rate when
  the file states them, and reference annotations when it has them (WFDB, EDF, a raw `.npy` or CSV signal);
- `Windows`: model-ready samples [n, ...] with what the file says about them (labels, groups, lengths, ids,
  channel names, layout): `.npz`/`.npy` arrays, CSV sequences, images.

`sniff` decides from the path (and at most a file's header) without reading the data; `holds(path)` says which of
the two the path holds; each reader names the `edgemed.core.limits` it applies. Adding a format is one module with
one `Reader` subclass and one `register` call in `edgemed.core.readers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec import Preprocessing

RECORDING, WINDOWS = "recording", "windows"


@dataclass
class RawRecording:
    name: str
    signal: np.ndarray  # [channels, samples], physical units (NaN where a sample is marked invalid)
    fs: float | None  # None when the file does not state its rate (a raw .npy or a CSV without times)
    names: list[str] | None  # channel names, None when the file names none (a .npy array)
    annotations: Any = None  # reference annotations (wfdb_annotations.Annotations) when the file has them
    where: str = ""  # how messages name it: "record 101", or the file's path


@dataclass
class Windows:
    X: np.ndarray
    description: str
    y: np.ndarray | None = None  # labels as stored: integers or strings
    label_names: tuple[str, ...] | None = None
    groups: np.ndarray | None = None
    lengths: np.ndarray | None = None
    ids: list[str] = field(default_factory=list)
    channel_names: tuple[str, ...] = ()
    layout: str | None = None
    preprocessing: Preprocessing | None = None  # what the file's samples already had (window, resize, units)
    sha256: str | None = None


class Reader:
    """One file format. Subclasses set the attributes and override what they hold."""

    name = ""
    description = ""  # for error messages: what the user may give
    suffixes: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()  # names in edgemed.core.limits applied while reading
    archive_items: tuple[str, ...] = ()  # suffixes of files `edgemed score` takes as items of an archive folder
    gives: tuple[str, ...] = (WINDOWS,)  # what its files can hold: RECORDING, WINDOWS or both

    def sniff(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in self.suffixes

    def holds(self, path: Path) -> str:
        """RECORDING or WINDOWS: what `path` holds."""
        return WINDOWS

    def items(self, path: Path) -> list[Path]:
        """The recordings or files a folder holds, one per item; a file is its own item."""
        return [path]

    def read_recording(self, path: Path, sampling_rate_hz: float | None = None) -> RawRecording:
        raise DataError(f"{path}: {self.description} holds model-ready samples, not a recording")

    def read_windows(self, path: Path, **options: Any) -> Windows:
        raise DataError(f"{path}: {self.description} holds a recording, not model-ready samples")


_REGISTRY: list[Reader] = []


def register(reader: Reader) -> Reader:
    """Add a reader; readers are asked in registration order."""
    _REGISTRY.append(reader)
    return reader


def readers() -> tuple[Reader, ...]:
    return tuple(_REGISTRY)


def find_reader(path: Path | str, holds: str | None = None) -> Reader:
    """The first registered reader that takes `path` (and, with `holds`, for which it holds that)."""
    path = Path(path)
    for reader in _REGISTRY:
        if reader.sniff(path) and (holds is None or reader.holds(path) == holds):
            return reader
    if not path.exists() and not path.with_name(path.name + ".hea").exists():
        raise DataError(f"{path}: no such file or folder (nor a WFDB record)")
    wanted = [r.description for r in _REGISTRY if holds is None or holds in r.gives]
    what = "a recording" if holds == RECORDING else "model-ready samples" if holds == WINDOWS else "an input"
    kind = f"unsupported file type {path.suffix!r}" if path.is_file() else f"not {what} edgemed reads"
    raise DataError(f"{path}: {kind}; give {', '.join(wanted[:-1])} or {wanted[-1]}")


def read_recording(path: Path | str, sampling_rate_hz: float | None = None) -> RawRecording:
    """The recording at `path`, by whichever reader holds one there."""
    path = Path(path)
    return find_reader(path, RECORDING).read_recording(path, sampling_rate_hz)


def read_windows(path: Path | str, **options: Any) -> Windows:
    """The model-ready samples at `path`, by whichever reader holds them there."""
    path = Path(path)
    return find_reader(path, WINDOWS).read_windows(path, **options)


def list_items(path: Path | str) -> list[Path]:
    """A folder's items for batch scoring (its WFDB records, or the files inside that a reader takes as archive
    items), or the path itself."""
    path = Path(path)
    if not path.is_dir():
        find_reader(path)
        return [path]
    for reader in _REGISTRY:
        if reader.sniff(path) and reader.holds(path) == RECORDING:
            return reader.items(path)
    suffixes = {s for r in _REGISTRY for s in r.archive_items}
    found = sorted(q for q in path.rglob("*") if q.is_file() and q.suffix.lower() in suffixes)
    if not found:
        raise DataError(f"{path}: no WFDB records, .npz shards or images to score")
    return found
