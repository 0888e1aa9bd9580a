"""What `edgemed info` shows about an ONNX file, read without torch or onnx."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemed.core.errors import EdgemedError
from edgemed.runtime.onnx.file import read_model_file
from edgemed.runtime.onnx.integrity import check_record, read_sidecar
from edgemed.runtime.onnx.metadata import PREFIX, ModelMetadata
from edgemed.runtime.onnx.proto import ValueInfo


@dataclass
class ModelInfo:
    path: str
    size_bytes: int
    sha256: str
    sidecar: str | None  # "matches", "MISMATCH", "unreadable", or None when there is none
    integrity: str  # "verified", "missing", or "FAILED: why"
    producer: str
    ir_version: int
    opsets: dict[str, int]
    op_types: dict[str, int]
    parameters: int
    external_data: bool
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    metadata: ModelMetadata
    other_metadata: dict[str, str] = field(default_factory=dict)

    @property
    def nodes(self) -> int:
        return sum(self.op_types.values())

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size_bytes": self.size_bytes, "sha256": self.sha256, "sidecar": self.sidecar,
                "integrity": self.integrity, "producer": self.producer, "ir_version": self.ir_version,
                "opsets": self.opsets, "op_types": self.op_types, "nodes": self.nodes, "parameters": self.parameters,
                "external_data": self.external_data, "inputs": [v._asdict() for v in self.inputs],
                "outputs": [v._asdict() for v in self.outputs], "edgemed": self.metadata.to_dict(),
                "other_metadata": self.other_metadata}


def describe(path: Path | str) -> ModelInfo:
    """Size, checksum (and whether the sidecar and the integrity record agree), opsets, op counts, parameters,
    I/O and edgemed metadata. It reports integrity failures rather than raising: it is for looking."""
    path = Path(path)
    data, summary = read_model_file(path)
    digest = hashlib.sha256(data).hexdigest()
    try:
        sidecar, _ = read_sidecar(path)
        sidecar_state = None if sidecar is None else ("matches" if sidecar == digest else "MISMATCH")
    except EdgemedError:
        sidecar_state = "unreadable"
    try:
        integrity = check_record(data, summary, path.name)
    except EdgemedError as exc:
        integrity = f"FAILED: {exc}"
    return ModelInfo(
        path=str(path), size_bytes=len(data), sha256=digest, sidecar=sidecar_state, integrity=integrity,
        producer=summary.producer, ir_version=summary.ir_version, opsets=summary.opsets,
        op_types=dict(summary.op_types.most_common()), parameters=summary.parameters,
        external_data=summary.external_data, inputs=summary.inputs, outputs=summary.outputs,
        metadata=ModelMetadata.from_summary(summary),
        other_metadata={k: v for k, v in summary.metadata.items() if not k.startswith(PREFIX)})


def _shape(dims: list) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def format_info(info: ModelInfo) -> str:
    meta = info.metadata
    lines = [
        f"file        {info.path}",
        f"size        {info.size_bytes:,} bytes" + ("  (weights in external data)" if info.external_data else ""),
        f"sha256      {info.sha256}" + (f"  (sidecar {info.sidecar})" if info.sidecar else "  (no sidecar)"),
        f"integrity   {info.integrity}",
        f"producer    {info.producer}, IR {info.ir_version}, opsets "
        + ", ".join(f"{d} {v}" for d, v in info.opsets.items()),
        f"parameters  {info.parameters:,}",
        f"nodes       {info.nodes}: " + ", ".join(f"{op} {n}" for op, n in info.op_types.items()),
    ]
    for kind, values in (("input", info.inputs), ("output", info.outputs)):
        for v in values:
            lines.append(f"{kind:<11} {v.name}: {v.dtype} {_shape(v.shape)}")
    if not meta.present:
        lines.append("metadata    none from edgemed: inputs are checked against the graph alone")
        return "\n".join(lines)
    spec = meta.spec
    if spec is None:
        lines.append(f"spec        unreadable: {meta.spec_error}")
    else:
        pre = spec.preprocessing
        lines.append(f"model       {spec.architecture}, labels {', '.join(spec.labels)}")
        norm = pre.normalization
        lines.append(f"preprocess  rate {f'{pre.rate_hz:g} Hz' if pre.rate_hz else 'not stated'}, units "
                     f"{pre.units or 'not stated'}, band-pass {pre.bandpass.describe() if pre.bandpass else 'none'}, "
                     f"normalisation {f'in the {norm.applied_in}' if norm else 'none'}, window "
                     f"{pre.window.describe() if pre.window else 'none'}"
                     + (f", resize to {pre.resize}" if pre.resize else ""))
        if spec.streaming:
            s = spec.streaming
            lines.append(f"streaming   chunks of {s.chunk_axis} in multiples of {s.chunk_multiple}; state "
                         + ", ".join(t.name for t in s.state_inputs))
    exporter = meta.exporter
    if exporter:
        lines.append(f"exporter    {exporter.get('name')} (opset {exporter.get('opset')}): {exporter.get('reason')}")
    parity = meta.parity
    if parity:
        lines.append(f"parity      {'passed' if parity.get('passed') else 'FAILED'} on {len(parity.get('rows', []))} "
                     f"outputs, max abs {parity.get('max_abs')}, atol {parity.get('atol')}, rtol {parity.get('rtol')}")
    if meta.quantization:
        q = meta.quantization
        lines.append(f"quantised   {q.get('mode')}, gate {q.get('gate')}, macro-F1 drop "
                     f"{q.get('macro_f1_drop_points')} points")
    prov = meta.provenance
    if prov:
        lines.append(f"provenance  data {prov.get('data_source')}, seed {prov.get('seed')}, "
                     f"git {prov.get('git_commit')}, trained {prov.get('created_utc')}, "
                     f"exported {prov.get('exported_utc')}")
    for key, value in meta.checksums.items():
        lines.append(f"checksum    {key} {value}")
    return "\n".join(lines)
