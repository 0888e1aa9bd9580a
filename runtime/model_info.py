"""What `edgemed info` shows about an ONNX file, read without torch or onnx."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgemed.core.errors import EdgemedError, InputError, ModelLoadError
from edgemed.core.limits import check_file_size
from edgemed.runtime.integrity import check_record, read_sidecar
from edgemed.runtime.onnx_proto import ModelSummary, read_summary

PREFIX = "edgemed."


def read_model_file(path: Path | str) -> tuple[bytes, ModelSummary]:
    """A model's bytes (within the size limit) and its parsed summary; ModelLoadError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    check_file_size(path, "model_mb")
    data = path.read_bytes()
    try:
        return data, read_summary(data)
    except InputError as exc:
        raise ModelLoadError(f"{path}: not a loadable ONNX model (corrupt or truncated?): {exc}") from exc


def edgemed_metadata(summary: ModelSummary) -> dict[str, Any]:
    """The `edgemed.*` entries, JSON-decoded where they are JSON."""
    meta: dict[str, Any] = {}
    for key, value in summary.metadata.items():
        if key.startswith(PREFIX):
            try:
                meta[key[len(PREFIX):]] = json.loads(value)
            except (ValueError, RecursionError):
                meta[key[len(PREFIX):]] = value
    return meta


def describe(path: Path | str) -> dict[str, Any]:
    """Size, checksum (and whether the sidecar and the integrity record agree), opsets, op counts, parameters,
    I/O and edgemed metadata. It reports integrity failures rather than raising: it is for looking."""
    path = Path(path)
    data, summary = read_model_file(path)
    digest = hashlib.sha256(data).hexdigest()
    try:
        sidecar, _ = read_sidecar(path)
    except EdgemedError:
        sidecar = "unreadable"
    try:
        integrity = check_record(data, summary, path.name)
    except EdgemedError as exc:
        integrity = f"FAILED: {exc}"
    meta = edgemed_metadata(summary)
    return {
        "path": str(path),
        "size_bytes": len(data),
        "sha256": digest,
        "sidecar": None if sidecar is None else ("matches" if sidecar == digest else "MISMATCH"),
        "integrity": integrity,
        "producer": summary.producer,
        "ir_version": summary.ir_version,
        "opsets": summary.opsets,
        "op_types": dict(summary.op_types.most_common()),
        "nodes": sum(summary.op_types.values()),
        "parameters": summary.parameters,
        "external_data": summary.external_data,
        "inputs": [vars(v) for v in summary.inputs],
        "outputs": [vars(v) for v in summary.outputs],
        "edgemed": meta,
        "other_metadata": {k: v for k, v in summary.metadata.items() if not k.startswith(PREFIX)},
    }


def _shape(dims: list) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def format_info(info: dict[str, Any]) -> str:
    meta = info["edgemed"]
    lines = [
        f"file        {info['path']}",
        f"size        {info['size_bytes']:,} bytes" + ("  (weights in external data)" if info["external_data"] else ""),
        f"sha256      {info['sha256']}" + (f"  (sidecar {info['sidecar']})" if info["sidecar"] else "  (no sidecar)"),
        f"integrity   {info['integrity']}",
        f"producer    {info['producer']}, IR {info['ir_version']}, opsets "
        + ", ".join(f"{d} {v}" for d, v in info["opsets"].items()),
        f"parameters  {info['parameters']:,}",
        f"nodes       {info['nodes']}: " + ", ".join(f"{op} {n}" for op, n in info["op_types"].items()),
    ]
    for kind in ("inputs", "outputs"):
        for v in info[kind]:
            lines.append(f"{kind[:-1]:<11} {v['name']}: {v['dtype']} {_shape(v['shape'])}")
    if not meta:
        lines.append("metadata    none from edgemed: inputs are checked against the graph alone")
        return "\n".join(lines)
    spec = meta.get("spec", {})
    pre = spec.get("preprocessing", {})
    lines.append(f"model       {spec.get('architecture')}, labels {', '.join(meta.get('labels', []))}")
    rate = pre.get("sampling_rate_hz") or pre.get("frame_rate_hz")
    norm = pre.get("normalization") or {}
    lines.append(f"preprocess  rate {rate} Hz, units {pre.get('units')}, band-pass {pre.get('bandpass')}, "
                 f"normalisation in {norm.get('applied_in', 'none')}, window {pre.get('window')}")
    if spec.get("streaming"):
        s = spec["streaming"]
        lines.append(f"streaming   chunks of {s['chunk_axis']} in multiples of {s['chunk_multiple']}; state "
                     + ", ".join(t["name"] for t in s["state_inputs"]))
    exporter = meta.get("exporter", {})
    if exporter:
        lines.append(f"exporter    {exporter.get('name')} (opset {exporter.get('opset')}): {exporter.get('reason')}")
    parity = meta.get("parity", {})
    if parity:
        lines.append(f"parity      {'passed' if parity.get('passed') else 'FAILED'} on {len(parity.get('rows', []))} "
                     f"outputs, max abs {parity.get('max_abs')}, atol {parity.get('atol')}, rtol {parity.get('rtol')}")
    prov = meta.get("provenance", {})
    if prov:
        lines.append(f"provenance  data {prov.get('data_source')}, seed {prov.get('seed')}, "
                     f"git {prov.get('git_commit')}, trained {prov.get('created_utc')}, "
                     f"exported {prov.get('exported_utc')}")
    for key, value in (meta.get("checksums") or {}).items():
        lines.append(f"checksum    {key} {value}")
    return "\n".join(lines)
