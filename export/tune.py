"""`edgemed tune`: find the fastest variant of a model that is still the model that was validated, on a device.

Candidates: every backend installed here (onnxruntime; OpenVINO with the `openvino` extra) x precision (fp32;
onnxruntime: the file's fp16, int8 static and dynamic; OpenVINO: bf16 where the CPU has it, int8 from NNCF and
from onnxruntime's quantiser) x threads (1 up to the device's) x graph options (onnxruntime's full or basic graph
optimisation). Each candidate passes two gates before it is timed:

1. parity: against the fp32 file on onnxruntime, on random inputs at several shapes and on the validation data;
   float candidates within `FLOAT_ATOL`/`FLOAT_RTOL`, reduced-precision ones with top-1 agreement of at least
   `MIN_AGREEMENT` on the validation data (their logits move by design; the clinical gate decides);
2. clinical: on the validation data, macro-F1 within `max_drop` points of the fp32 model's, and no class's
   sensitivity more than `max_class_drop` points lower.

The survivors are timed interleaved (batch 1, the same inputs) and their memory measured in a fresh process; the
fastest that fits the device's latency and memory budgets wins. Every candidate, with why it was rejected, goes
to `tune.json` and `tune.md`; the winner is copied with its sidecar to `model.tuned.onnx` and its settings to
`tuned.json` (what `edgemed bundle --tuned` reads). Gate results, quantised files and timings are cached under a
key of the model's sha256, the validation data's digest, the candidate and the versions, so a repeat run is quick.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.atomic import check_output_folder, sidecar_path, write_bytes_atomic, write_together
from edgemed.core.calibration import softmax
from edgemed.core.errors import EdgemedError, QuantizationError
from edgemed.core.examples import example_inputs, example_sizes
from edgemed.core.limits import max_threads
from edgemed.core.metrics import classification_report
from edgemed.export.quant_data import Labelled
from edgemed.export.quantize import QuantEngine, QuantMode, isa_targets, quantize
from edgemed.runtime.deploy.acceptance import FLOAT_ATOL, FLOAT_RTOL  # float variants: the on-device replay's tolerance
from edgemed.runtime.engines.providers import resolve_device
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.ops.timing import interleaved

MIN_AGREEMENT = 0.98
MIN_GAIN = 0.05  # a reduced-precision variant must be this much faster than the best fp32 one to be chosen
DEFAULT_MAX_CLASS_DROP = 2.0  # points of sensitivity
# Resident memory after loading and one inference, read from /proc (a forked child's peak RSS would count the
# parent's pages copied before exec).
MEMORY_PROBE = """
import sys
from edgemed.runtime.model import EdgeModel
from edgemed.core.examples import example_inputs, example_sizes
m = EdgeModel(sys.argv[1], threads=int(sys.argv[2]), backend=sys.argv[3], precision=sys.argv[4],
              graph_optimization=sys.argv[5])
m.run(example_inputs(m.spec, example_sizes(m.spec, 1)))
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024)
"""


@dataclass(frozen=True)
class Candidate:
    backend: str  # onnxruntime | openvino
    precision: str  # fp32 | fp16 | bf16 | int8-static | int8-dynamic | int8-nncf
    threads: int
    graph: str = "all"  # onnxruntime graph optimisation: all | basic

    @property
    def name(self) -> str:
        graph = "" if self.backend != "onnxruntime" or self.graph == "all" else f", graph {self.graph}"
        return f"{self.backend} {self.precision}, {self.threads} thread(s){graph}"

    @property
    def file_kind(self) -> str:
        """Which file it runs: the fp32 export, or a quantised one."""
        return {"int8-static": "static", "int8-dynamic": "dynamic", "int8-nncf": "nncf", "fp16": "fp16"}.get(
            self.precision, "fp32")

    @property
    def runtime_precision(self) -> str:
        return "bf16" if self.precision == "bf16" else "fp32"


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


def candidates(device_threads: int, openvino: bool, bf16: bool, thread_options: list[int] | None = None
               ) -> list[Candidate]:
    threads = thread_options or sorted({1, max(1, min(device_threads, max_threads()))})
    out = []
    for t in threads:
        for graph in ("all", "basic"):
            out.append(Candidate("onnxruntime", "fp32", t, graph))
        out += [Candidate("onnxruntime", p, t) for p in ("fp16", "int8-static", "int8-dynamic")]
        if openvino:
            out += [Candidate("openvino", p, t) for p in ("fp32", *(["bf16"] if bf16 else []), "int8-nncf",
                                                              "int8-static")]
    return out


def _versions() -> str:
    parts = []
    for pkg in ("edgemed", "onnxruntime", "openvino", "nncf"):
        try:
            parts.append(f"{pkg}={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return ",".join(parts)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _logits(model: EdgeModel, data: Labelled, batch: int = 64) -> np.ndarray:
    return np.concatenate([model.run(data.feeds(s, s + batch, model.spec))[0]
                           for s in range(0, len(data.y), batch)]).astype(np.float64)


class Tuner:
    def __init__(self, model: Path, device: str, calibration: Labelled, validation: Labelled, cache: Path,
                 max_drop: float, max_class_drop: float = DEFAULT_MAX_CLASS_DROP, runs: int = 200) -> None:
        self.path, self.cache = Path(model), Path(cache)
        self.device, self.device_name = resolve_device(device), device
        self.calibration, self.validation = calibration, validation
        self.max_drop, self.max_class_drop, self.runs = max_drop, max_class_drop, runs
        self.reference = EdgeModel(self.path, threads=1)
        self.spec = self.reference.spec
        self.data_key = _key(validation.source, len(validation.y), float(np.asarray(validation.x[:64]).sum()))
        self.cache.mkdir(parents=True, exist_ok=True)
        self.ref_logits = _logits(self.reference, validation)
        self.ref_report = classification_report(validation.y, softmax(self.ref_logits), self.spec.labels)
        sizes = [example_sizes(self.spec, b) for b in (1, 3)]
        axis = self.spec.sequence_axis
        if axis is not None:
            sizes.append({**example_sizes(self.spec, 2), axis: max(2 * sizes[0][axis] + 1,
                                                                   self.spec.signal.min_sizes.get(axis, 1))})
        self.random_cases = [example_inputs(self.spec, s, seed=11 + i) for i, s in enumerate(sizes)]
        self.random_refs = [self.reference.run(case)[0].astype(np.float64) for case in self.random_cases]
        self.cached = 0

    def _cache_file(self, kind: str, key: str, suffix: str) -> Path:
        return self.cache / f"{self.reference.sha256[:16]}-{kind}-{key}{suffix}"

    def variant_file(self, c: Candidate) -> Path:
        """The file a candidate runs: the export itself, or a quantised file made (once) into the cache."""
        kind = c.file_kind
        if kind == "fp32":
            return self.path
        out = self._cache_file(kind, _key(self.data_key, self.max_drop, _versions()), ".onnx")
        if out.is_file() and sidecar_path(out).is_file():
            return out
        mode = {"static": QuantMode.STATIC, "dynamic": QuantMode.DYNAMIC, "fp16": QuantMode.FP16,
                "nncf": QuantMode.STATIC}[kind]
        engine = QuantEngine.NNCF if kind == "nncf" else QuantEngine.ONNXRUNTIME
        quantize(self.path, out, mode, self.calibration, self.validation, max_drop=self.max_drop, force_gate=True,
                 overwrite=True, engine=engine, isa_classes=isa_targets(None, self.device_name))
        return out

    def load(self, c: Candidate, path: Path) -> EdgeModel:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return EdgeModel(path, threads=c.threads, backend=c.backend, precision=c.runtime_precision,
                             graph_optimization=c.graph)

    def gate(self, c: Candidate, o: Outcome) -> EdgeModel | None:
        """Both gates for one candidate (cached); the loaded model when it passes."""
        key = _key("gate", c, self.data_key, self.max_drop, self.max_class_drop, _versions())
        cached = self._cache_file("gate", key, ".json")
        if cached.is_file():
            for k, v in json.loads(cached.read_text()).items():
                setattr(o, k, v)
            self.cached += 1
            if o.status != "passed":  # a rejected candidate is not built or loaded again
                return None
        try:
            model = self.load(c, self.variant_file(c))
        except EdgemedError as exc:
            o.status, o.reason = "rejected", f"unavailable: {str(exc)[:160]}"
            return None
        if cached.is_file():
            return model
        self._gate(c, model, o)
        cached.write_text(json.dumps({k: getattr(o, k) for k in ("status", "reason", "parity_max_abs", "agreement",
                                                                   "macro_f1", "macro_f1_drop_points",
                                                                   "worst_class_drop_points")}))
        return model if o.status == "passed" else None

    def _gate(self, c: Candidate, model: EdgeModel, o: Outcome) -> None:
        exact = c.precision == "fp32"
        worst = 0.0
        for case, ref in zip(self.random_cases, self.random_refs, strict=True):
            got = model.run(case)[0].astype(np.float64)
            worst = max(worst, float(np.abs(got - ref).max()))
            if exact and not np.allclose(got, ref, atol=FLOAT_ATOL, rtol=FLOAT_RTOL):
                o.parity_max_abs = worst
                o.status, o.reason = "rejected", (f"parity: logits differ from the fp32 model by {worst:.2e} "
                                                  f"(atol {FLOAT_ATOL}, rtol {FLOAT_RTOL})")
                return
        logits = _logits(model, self.validation)
        worst = max(worst, float(np.abs(logits - self.ref_logits).max()))
        o.parity_max_abs = worst
        o.agreement = float((logits.argmax(1) == self.ref_logits.argmax(1)).mean())
        if exact and not np.allclose(logits, self.ref_logits, atol=FLOAT_ATOL, rtol=FLOAT_RTOL):
            o.status, o.reason = "rejected", f"parity on validation data: max logit difference {worst:.2e}"
            return
        if not exact and o.agreement < MIN_AGREEMENT:
            o.status, o.reason = "rejected", f"top-1 agreement {o.agreement:.4f} < {MIN_AGREEMENT}"
            return
        report = classification_report(self.validation.y, softmax(logits), self.spec.labels)
        o.macro_f1 = float(report["macro_f1"])
        o.macro_f1_drop_points = 100 * (float(self.ref_report["macro_f1"]) - o.macro_f1)
        drops = [100 * ((self.ref_report["per_class"][k]["sensitivity"] or 0.0)
                        - (report["per_class"][k]["sensitivity"] or 0.0))
                 for k in self.spec.labels if self.ref_report["per_class"][k]["support"]]
        o.worst_class_drop_points = max(drops) if drops else 0.0
        if o.macro_f1_drop_points > self.max_drop:
            o.status, o.reason = "rejected", f"macro-F1 drops {o.macro_f1_drop_points:.2f} > {self.max_drop} points"
        elif o.worst_class_drop_points > self.max_class_drop:
            o.status, o.reason = "rejected", (f"a class's sensitivity drops {o.worst_class_drop_points:.2f} > "
                                              f"{self.max_class_drop} points")
        else:
            o.status = "passed"

    def memory_mb(self, c: Candidate, path: Path) -> float | None:
        key = self._cache_file("memory", _key("rss", c, _versions(), str(path.name)), ".json")
        if key.is_file():
            return json.loads(key.read_text())["mb"]
        proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), str(c.threads), c.backend,
                               c.runtime_precision, c.graph], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            return None
        mb = float(proc.stdout.strip().splitlines()[-1])
        key.write_text(json.dumps({"mb": mb}))
        return mb


def tune(model: Path, device: str, calibration: Labelled, validation: Labelled, out: Path, cache: Path,
         max_drop: float = 0.5, max_class_drop: float = DEFAULT_MAX_CLASS_DROP, runs: int = 200,
         threads: list[int] | None = None, force: bool = False) -> TuneResult:
    from edgemed.runtime.engines import openvino as openvino_backend

    check_output_folder(out, ("tune.json", "tune.md", "tuned.json", "model.tuned.onnx", "model.tuned.onnx.sha256"),
                        force, (model,), what="--out")
    tuner = Tuner(model, device, calibration, validation, cache, max_drop, max_class_drop, runs)
    if tuner.spec.streaming is not None:
        raise QuantizationError("tune takes the batch export; streaming models are tuned through their batch model")
    has_ov = openvino_backend.available()
    notes = [] if has_ov else ["OpenVINO is not installed here (pip install 'edgemed[openvino]'): onnxruntime only"]
    bf16 = has_ov and openvino_backend.supports_bf16()
    outcomes = [Outcome(c) for c in candidates(tuner.device.threads, has_ov, bf16, threads)]
    survivors: dict[Candidate, EdgeModel] = {}
    for o in outcomes:
        loaded = tuner.gate(o.candidate, o)
        if loaded is not None:
            survivors[o.candidate] = loaded
    feeds = tuner.validation.feeds(0, 1, tuner.spec)
    if survivors:
        times = interleaved({c: (lambda m=m: m.run(feeds)) for c, m in survivors.items()}, runs, warmup=10)
        for o in outcomes:
            if o.candidate in times:
                t = np.asarray(times[o.candidate])
                o.p50_us, o.p90_us = float(np.median(t)), float(np.percentile(t, 90))
                o.memory_mb = tuner.memory_mb(o.candidate, survivors[o.candidate].path)
    budget_us = tuner.device.latency_budget_ms * 1000
    for o in outcomes:
        if o.status != "passed":
            continue
        if o.p50_us is not None and o.p50_us > budget_us:
            o.status, o.reason = "too slow", f"p50 {o.p50_us:.0f} us > budget {budget_us:.0f} us"
        elif o.memory_mb is not None and o.memory_mb > tuner.device.memory_budget_mb:
            o.status, o.reason = "over memory", f"{o.memory_mb:.0f} MB > budget {tuner.device.memory_budget_mb} MB"
    passed = [o for o in outcomes if o.status == "passed" and o.p50_us is not None]
    chosen = min(passed, key=lambda o: o.p50_us) if passed else None
    exact = [o for o in passed if o.candidate.precision == "fp32"]
    if chosen and exact and chosen.candidate.precision != "fp32":
        best_exact = min(exact, key=lambda o: o.p50_us)
        if chosen.p50_us > (1 - MIN_GAIN) * best_exact.p50_us:  # not clearly faster: keep the exact model
            notes.append(f"{chosen.candidate.name} was within {100 * MIN_GAIN:.0f} % of {best_exact.candidate.name}"
                         "; the fp32 model is kept")
            chosen = best_exact
    if chosen:
        chosen.status = "chosen"
    result = TuneResult(str(model), tuner.reference.sha256, tuner.device.to_dict(),
                        float(tuner.ref_report["macro_f1"]), outcomes, chosen, tuner.cached, notes)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "tune.json", json.dumps(result.to_dict(), indent=1), replace=force)
    write_bytes_atomic(out / "tune.md", result.markdown(), replace=force)
    if chosen:
        source = tuner.variant_file(chosen.candidate)
        data = source.read_bytes()
        target = out / "model.tuned.onnx"
        write_together({target: data, sidecar_path(target): f"{hashlib.sha256(data).hexdigest()}  {target.name}\n"
                        .encode()}, replace=force)
        write_bytes_atomic(out / "tuned.json", json.dumps({
            "schema": "edgemed.tuned/1", "file": "model.tuned.onnx", "backend": chosen.candidate.backend,
            "precision": chosen.candidate.runtime_precision, "threads": chosen.candidate.threads,
            "graph_optimization": chosen.candidate.graph, "variant": chosen.candidate.precision,
            "p50_us": chosen.p50_us, "device": tuner.device.name}, indent=1), replace=force)
    return result
