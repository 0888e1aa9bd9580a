"""`edgemed verify`: rerun parity between a checkpoint and an ONNX file exported from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgemed.core.digest import file_sha256
from edgemed.core.errors import SpecError
from edgemed.export.parity import ParityReport
from edgemed.export.pipeline import measure_parity, session, target_from_checkpoint
from edgemed.runtime.integrity import verify_file
from edgemed.runtime.model_info import describe


@dataclass
class VerifyResult:
    report: ParityReport
    notes: list[str]


def verify(checkpoint: Path, onnx_path: Path, use_real_data: bool = True) -> VerifyResult:
    """Parity of `onnx_path` against `checkpoint`. A file that fails its own integrity checks is refused first."""
    verify_file(onnx_path, strict=False)
    info = describe(onnx_path)
    spec = info.metadata.spec
    if spec is None:
        raise SpecError(f"{onnx_path}: no edgemed spec; verify compares models exported by edgemed")
    target = target_from_checkpoint(checkpoint, streaming=spec.streaming is not None, use_real_data=use_real_data)
    notes = []
    recorded = info.metadata.checksums.get("checkpoint_sha256")
    if recorded and recorded != file_sha256(checkpoint):
        notes.append(f"note: {onnx_path.name} was exported from another checkpoint file (sha256 {recorded[:12]}...)")
    if info.sidecar is None:
        notes.append(f"note: {onnx_path.name} has no .sha256 sidecar")
    if spec.labels != target.spec.labels or spec.architecture != target.spec.architecture:
        raise SpecError(f"{onnx_path} is a {spec.architecture} with labels {list(spec.labels)}, but {checkpoint} "
                        f"is a {target.spec.architecture} with labels {list(target.spec.labels)}")
    return VerifyResult(measure_parity(target, session(onnx_path)), notes)


def to_json(result: VerifyResult) -> str:
    return json.dumps({**result.report.to_dict(), "notes": result.notes}, indent=2)
