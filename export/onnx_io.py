"""Checking, annotating and atomically writing ONNX files (needs the onnx package: export side only)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import onnx

from edgemed.core.atomic import write_bytes_atomic
from edgemed.core.errors import ExportError

METADATA_PREFIX = "edgemed."
FORMAT_VERSION = 1


def check_model(model: onnx.ModelProto) -> None:
    """onnx.checker with full check (which runs strict shape inference) and type-checked shape inference."""
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"exported graph fails onnx.checker: {str(exc).splitlines()[0]}") from exc


def weights_sha256(model: onnx.ModelProto) -> str:
    """Digest of every initializer's name and bytes: changes when any weight changes, not with metadata."""
    h = hashlib.sha256()
    for init in sorted(model.graph.initializer, key=lambda t: t.name):
        h.update(init.name.encode())
        h.update(onnx.numpy_helper.to_array(init).tobytes())
    return h.hexdigest()


def set_metadata(model: onnx.ModelProto, entries: dict[str, Any]) -> None:
    """Store each entry under `edgemed.<key>` in metadata_props (JSON unless already a string)."""
    keep = [p for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in {"format_version": str(FORMAT_VERSION), **entries}.items():
        prop = model.metadata_props.add()
        prop.key = METADATA_PREFIX + key
        prop.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def get_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)}


def save_model(model: onnx.ModelProto, path: Path) -> str:
    """Write one self-contained file (weights inline) and its `.sha256` sidecar, each atomically."""
    data = model.SerializeToString()
    if len(data) >= 2**31:
        raise ExportError(f"model is {len(data) / 2**30:.1f} GiB; ONNX files over 2 GiB need external data")
    write_bytes_atomic(path, data)
    digest = hashlib.sha256(data).hexdigest()
    write_bytes_atomic(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n".encode())
    return digest


def check_writable(path: Path) -> None:
    """Fail before any work when the output cannot be written."""
    folder = path.parent
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give a file name such as {path / 'model.onnx'}")
    if not folder.is_dir():
        raise ExportError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"{path}: folder {folder} is not writable")
