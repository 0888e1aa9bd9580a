"""Parity between the PyTorch original and the exported ONNX model, measured at many shapes.

Tolerances for fp32 (atol 1e-5, rtol 1e-4): an exported GRU reorders float operations but computes the same
function, and measures about 4e-8 here; 1e-5 leaves two orders of magnitude for other CPUs and kernels while
still catching a wrong gate formula (pytorch#189225: errors up to 0.1) or a mis-wired state, which show up at
1e-3 and above. An element passes when |onnx - torch| <= atol * scale + rtol * |torch|, where scale is the
largest |torch| value of that output in that case, at least 1 (numpy `allclose` for outputs within +-1).
Why the scale: float32 rounding grows with the values a layer sums, so a correct model whose logits reach
300 (a trained classifier on random parity inputs, measured) carries 300 x 1.2e-7 = 4e-5 of rounding on
every logit of that row, small ones included; fixed atol 1e-5 would call that a mismatch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from edgemed.core.errors import ParityError

FP32_ATOL = 1e-5
FP32_RTOL = 1e-4

Inputs = dict[str, np.ndarray]
Reference = Callable[[Inputs], list[np.ndarray]]


@dataclass
class ParityCase:
    name: str
    inputs: Inputs
    source: str = "random"


@dataclass
class ParityRow:
    case: str
    source: str
    shape: str
    output: str
    max_abs: float
    max_rel: float
    passed: bool


@dataclass
class ParityReport:
    rows: list[ParityRow] = field(default_factory=list)
    atol: float = FP32_ATOL
    rtol: float = FP32_RTOL
    provider: str = "CPUExecutionProvider"

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[ParityRow]:
        return [r for r in self.rows if not r.passed]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "atol": self.atol, "rtol": self.rtol, "provider": self.provider,
                "max_abs": max((r.max_abs for r in self.rows), default=None), "rows": [asdict(r) for r in self.rows]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def table(self) -> str:
        lines = [f"{'case':<38}{'source':<10}{'shape':<22}{'output':<10}{'max abs':>10}{'max rel':>10}  ok"]
        for r in self.rows:
            lines.append(f"{r.case:<38}{r.source:<10}{r.shape:<22}{r.output:<10}{r.max_abs:>10.2e}"
                         f"{r.max_rel:>10.2e}  {'yes' if r.passed else 'NO'}")
        verdict = "PASS" if self.passed else f"FAIL ({len(self.failures)} of {len(self.rows)} outputs)"
        lines.append(f"parity {verdict}: atol {self.atol:g}, rtol {self.rtol:g}, onnxruntime {self.provider}")
        return "\n".join(lines)

    def raise_for_failures(self, what: str = "exported model") -> None:
        if self.passed:
            return
        detail = "; ".join(f"{r.case} {r.shape} {r.output}: max abs {r.max_abs:.2e}, max rel {r.max_rel:.2e}"
                           for r in self.failures)
        raise ParityError(f"{what} does not match PyTorch within atol {self.atol:g}, rtol {self.rtol:g}: {detail}")


def compare(case: ParityCase, names: list[str], got: list[np.ndarray], ref: list[np.ndarray],
            atol: float, rtol: float) -> list[ParityRow]:
    shape = "x".join(str(d) for d in next(iter(case.inputs.values())).shape)
    rows = []
    for name, g, r in zip(names, got, ref, strict=True):
        g, r = np.asarray(g, np.float64), np.asarray(r, np.float64)
        if g.shape != r.shape:
            rows.append(ParityRow(case.name, case.source, shape, name, float("inf"), float("inf"), False))
            continue
        diff = np.abs(g - r)
        finite = np.isfinite(g).all() and np.isfinite(r).all()
        rel = diff / np.maximum(np.abs(r), atol)
        scale = max(1.0, float(np.abs(r).max())) if r.size and finite else 1.0
        rows.append(ParityRow(
            case.name, case.source, shape, name, float(diff.max()) if diff.size else 0.0,
            float(rel.max()) if rel.size else 0.0, bool(finite and np.all(diff <= atol * scale + rtol * np.abs(r))),
        ))
    return rows


def run_parity(reference: Reference, run_onnx: Callable[[Inputs], list[np.ndarray]], output_names: list[str],
               cases: Iterable[ParityCase], atol: float = FP32_ATOL, rtol: float = FP32_RTOL,
               provider: str = "CPUExecutionProvider") -> ParityReport:
    """Run every case through both and collect one row per output; never stops at the first failure."""
    report = ParityReport(atol=atol, rtol=rtol, provider=provider)
    for case in cases:
        report.rows.extend(compare(case, output_names, run_onnx(case.inputs), reference(case.inputs), atol, rtol))
    return report
