"""Reading a model file: within the size limit, parsed by the runtime's own reader and walked whole before any
engine sees it (`proto`, `walk`), so every later check and digest is of exactly these bytes, and the work an engine
would do folding its constants while loading bounded (`folding`)."""

from __future__ import annotations

from pathlib import Path

from edgemed.core.errors import InputError, ModelLoadError
from edgemed.core.limits import check_file_size
from edgemed.runtime.onnx.folding import check_folding
from edgemed.runtime.onnx.proto import ModelSummary, read_summary
from edgemed.runtime.onnx.walk import check_model


def read_model_file(path: Path | str) -> tuple[bytes, ModelSummary]:
    """A model's bytes (within the size limit) and its parsed summary; ModelLoadError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    check_file_size(path, "model_mb")
    data = path.read_bytes()
    try:
        summary = read_summary(data)
        check_model(memoryview(data), path.name)
        check_folding(memoryview(data), path.name)
        return data, summary
    except InputError as exc:
        raise ModelLoadError(f"{path}: not a loadable ONNX model (corrupt or truncated?): {exc}") from exc
