"""`edgemed verify`: rerun parity between a checkpoint and an ONNX file exported from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgemed.core.digest import file_sha256
from edgemed.core.errors import SpecError
from edgemed.export.parity import ParityReport
from edgemed.export.pipeline import measure_parity, session, target_from_checkpoint
from edgemed.runtime.onnx.file import read_model_file
from edgemed.runtime.onnx.integrity import verify_model
from edgemed.runtime.onnx.metadata import ModelMetadata


@dataclass
class VerifyResult:
    report: ParityReport
    notes: list[str]


def verify(checkpoint: Path, onnx_path: Path, use_real_data: bool = True) -> VerifyResult:
    """Parity of `onnx_path` against `checkpoint`. The file is read once; it must carry its sidecar and integrity
    record, both matching (a check that passes on a file whose tampering would go unnoticed proves nothing), and
    parity runs on exactly the bytes checked."""
    onnx_path = Path(onnx_path)
    data, summary = read_model_file(onnx_path)
    verify_model(onnx_path, data, summary, strict=True)
    spec = ModelMetadata.from_summary(summary).spec
    if spec is None:
        raise SpecError(f"{onnx_path}: no edgemed spec; verify compares models exported by edgemed")
    target = target_from_checkpoint(checkpoint, streaming=spec.streaming is not None, use_real_data=use_real_data)
    notes = []
    recorded = ModelMetadata.from_summary(summary).checksums.get("checkpoint_sha256")
    if recorded and recorded != file_sha256(checkpoint):
        notes.append(f"note: {onnx_path.name} was exported from another checkpoint file (sha256 {recorded[:12]}...)")
    if spec.labels != target.spec.labels or spec.architecture != target.spec.architecture:
        raise SpecError(f"{onnx_path} is a {spec.architecture} with labels {list(spec.labels)}, but {checkpoint} "
                        f"is a {target.spec.architecture} with labels {list(target.spec.labels)}")
    return VerifyResult(measure_parity(target, session(data)), notes)


def to_json(result: VerifyResult) -> str:
    return json.dumps({**result.report.to_dict(), "notes": result.notes}, indent=2)
