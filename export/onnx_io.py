"""Checking, annotating and writing ONNX files (needs the onnx package: export side only).

`save_model` is the one way edgemed writes a model: it records the weights digest and the integrity record
(computed by the runtime's own reader, so the runtime checks exactly what was written), then publishes the file
and its `.sha256` sidecar together.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import onnx

from edgemed.core.atomic import sidecar_path, write_together
from edgemed.core.errors import ExportError
from edgemed.runtime.onnx.integrity import (
    CHECKSUMS_KEY,
    INTEGRITY_KEY,
    check_record,
    integrity_record,
    weights_sha256,
)
from edgemed.runtime.onnx.proto import read_summary

METADATA_PREFIX = "edgemed."
FORMAT_VERSION = 2


def check_model(model: onnx.ModelProto) -> None:
    """onnx.checker with full check (which runs strict shape inference) and type-checked shape inference."""
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"exported graph fails onnx.checker: {str(exc).splitlines()[0]}") from exc


def set_metadata(model: onnx.ModelProto, entries: dict[str, Any]) -> None:
    """Store each entry under `edgemed.<key>` in metadata_props (JSON unless already a string), replacing every
    earlier edgemed entry."""
    keep = [p for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in {"format_version": str(FORMAT_VERSION), **entries}.items():
        _put(model, METADATA_PREFIX + key, value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def _put(model: onnx.ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    prop = model.metadata_props.add()
    prop.key, prop.value = key, value


def get_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)}


def seal(model: onnx.ModelProto) -> bytes:
    """The model's bytes with `edgemed.checksums.weights_sha256` and `edgemed.integrity` set for exactly those bytes."""
    for prop in list(model.metadata_props):
        if prop.key == INTEGRITY_KEY:
            model.metadata_props.remove(prop)
    checksums = json.loads(get_metadata(model).get("checksums", "{}"))
    checksums["weights_sha256"] = weights_sha256(read_summary(model.SerializeToString()))
    _put(model, CHECKSUMS_KEY, json.dumps(checksums, sort_keys=True))
    unsealed = model.SerializeToString()
    _put(model, INTEGRITY_KEY, integrity_record(unsealed, read_summary(unsealed)))
    data = model.SerializeToString()
    if check_record(data, read_summary(data), "the model being written") != "verified":
        raise ExportError("internal error: the integrity record does not verify on the bytes written")
    return data


def save_model(model: onnx.ModelProto, path: Path, replace: bool = False) -> str:
    """Seal the model and publish one self-contained file (weights inline) with its `.sha256` sidecar, both or
    neither, over existing ones only when `replace`. Returns the file's sha256."""
    data = seal(model)
    if len(data) >= 2**31:
        raise ExportError(f"model is {len(data) / 2**30:.1f} GiB; ONNX files over 2 GiB need external data")
    digest = hashlib.sha256(data).hexdigest()
    write_together({path: data, sidecar_path(path): f"{digest}  {path.name}\n".encode()}, replace=replace)
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
