"""What `edgemed tune` decides about: a candidate (backend x precision x threads x graph options), its outcome
through the gates and timings, and the whole result as tune.json and tune.md."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    backend: str  # onnxruntime | openvino
    precision: str  # fp32 | fp16 | bf16 | int8-static | int8-static-bf16 | int8-dynamic | int8-nncf
    threads: int
    graph: str = "all"  # onnxruntime graph optimisation: all | basic

    @property
    def name(self) -> str:
        graph = "" if self.backend != "onnxruntime" or self.graph == "all" else f", graph {self.graph}"
        return f"{self.backend} {self.precision}, {self.threads} thread(s){graph}"

    @property
    def file_kind(self) -> str:
        """Which file it runs: the fp32 export, or a quantised one."""
        return {"int8-static": "static", "int8-static-bf16": "static", "int8-dynamic": "dynamic",
                "int8-nncf": "nncf", "fp16": "fp16"}.get(self.precision, "fp32")

    @property
    def runtime_precision(self) -> str:
        return "bf16" if self.precision.endswith("bf16") else "fp32"  # int8-static-bf16: the float rest in bf16


@dataclass
class Outcome:
    candidate: Candidate
    status: str = "pending"  # chosen | passed | rejected | too slow | over memory
    reason: str = ""
    parity_max_abs: float | None = None
    agreement: float | None = None
    macro_f1: float | None = None
    macro_f1_drop_points: float | None = None
    worst_class_drop_points: float | None = None
    p50_us: float | None = None
    p90_us: float | None = None
    memory_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": dataclasses.asdict(self.candidate), "name": self.candidate.name,
                **{k: v for k, v in dataclasses.asdict(self).items() if k != "candidate"}}


@dataclass
class TuneResult:
    model: str
    sha256: str
    device: dict[str, Any]
    reference_macro_f1: float
    outcomes: list[Outcome]
    chosen: Outcome | None
    cached: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgemed.tune/1", "model": self.model, "sha256": self.sha256, "device": self.device,
                "reference_macro_f1": self.reference_macro_f1, "cached": self.cached, "notes": self.notes,
                "chosen": self.chosen.to_dict() if self.chosen else None,
                "candidates": [o.to_dict() for o in self.outcomes]}

    def markdown(self) -> str:
        def f(v: float | None, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)

        lines = [f"Tuning {self.model} for {self.device['name']} (latency budget {self.device['latency_budget_ms']}"
                 f" ms, memory budget {self.device['memory_budget_mb']} MB); fp32 macro-F1 "
                 f"{self.reference_macro_f1:.4f}.", "",
                 "| candidate | status | p50 us | p90 us | memory MB | macro-F1 drop | worst class drop | "
                 "top-1 agreement | reason |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        order = sorted(self.outcomes, key=lambda o: (o.p50_us is None, o.p50_us or 0.0))
        for o in order:
            lines.append(f"| {o.candidate.name} | {o.status} | {f(o.p50_us, '.1f')} | {f(o.p90_us, '.1f')} | "
                         f"{f(o.memory_mb, '.0f')} | {f(o.macro_f1_drop_points, '.2f')} | "
                         f"{f(o.worst_class_drop_points, '.2f')} | {f(o.agreement, '.4f')} | {o.reason} |")
        if self.chosen:
            lines += ["", f"Chosen: **{self.chosen.candidate.name}**, p50 {self.chosen.p50_us:.1f} us."]
        else:
            lines += ["", "No candidate passed both gates within the budgets."]
        return "\n".join(lines + [f"- {n}" for n in self.notes]) + "\n"
