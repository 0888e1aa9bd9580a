"""The gates of `edgemed tune`: every candidate is checked for parity against the fp32 file and for the clinical
drop on the validation data before it is timed; results, quantised variants and memory probes are cached under a
key of the model, the data, the candidate and the package versions."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.atomic import sidecar_path
from edgemed.core.calibration import softmax
from edgemed.core.errors import EdgemedError
from edgemed.core.examples import example_inputs, example_sizes
from edgemed.core.metrics import classification_report
from edgemed.export.quant_data import Labelled
from edgemed.export.quantize import QuantEngine, QuantMode, isa_targets, quantize
from edgemed.export.tune_result import Candidate, Outcome
from edgemed.runtime.deploy.acceptance import FLOAT_ATOL, FLOAT_RTOL  # float variants: the on-device replay's tolerance
from edgemed.runtime.engines.providers import resolve_device
from edgemed.runtime.model import EdgeModel

MIN_AGREEMENT = 0.98
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


def versions() -> str:
    parts = []
    for pkg in ("edgemed", "onnxruntime", "openvino", "nncf"):
        try:
            parts.append(f"{pkg}={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return ",".join(parts)


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def logits_of(model: EdgeModel, data: Labelled, batch: int = 64) -> np.ndarray:
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
        self.data_key = cache_key(validation.source, len(validation.y), float(np.asarray(validation.x[:64]).sum()))
        self.cache.mkdir(parents=True, exist_ok=True)
        self.ref_logits = logits_of(self.reference, validation)
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
        out = self._cache_file(kind, cache_key(self.data_key, self.max_drop, versions()), ".onnx")
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
        key = cache_key("gate", c, self.data_key, self.max_drop, self.max_class_drop, versions())
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
        logits = logits_of(model, self.validation)
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
        key = self._cache_file("memory", cache_key("rss", c, versions(), str(path.name)), ".json")
        if key.is_file():
            return json.loads(key.read_text())["mb"]
        proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), str(c.threads), c.backend,
                               c.runtime_precision, c.graph], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            return None
        mb = float(proc.stdout.strip().splitlines()[-1])
        key.write_text(json.dumps({"mb": mb}))
        return mb
