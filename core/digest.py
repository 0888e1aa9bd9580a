"""sha256 of files, read in blocks (checkpoints, data files, models), and where a file's sha256 sidecar lives."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_path(path: Path) -> Path:
    """`model.onnx` -> `model.onnx.sha256`."""
    return path.with_name(path.name + ".sha256")
