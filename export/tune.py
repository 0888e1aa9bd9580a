"""`edgemed tune`: find the fastest variant of a model that is still the model that was validated, on a device.

Candidates: every engine of the registry available here (`edgemed.runtime.engines`: onnxruntime; OpenVINO with the
`openvino` extra; CUDA and TensorRT where onnxruntime-gpu finds a GPU) x the variants each offers (fp32;
onnxruntime: the file's fp16, int8 static and dynamic; OpenVINO: bf16 where the CPU has it, int8 from NNCF and
from onnxruntime's quantiser; GPU engines: fp16) x threads (1 up to the device's) x graph options (onnxruntime's
full or basic graph optimisation). Each candidate passes two gates before it is timed:

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

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.atomic import check_output_folder, sidecar_path, write_bytes_atomic, write_together
from edgemed.core.errors import QuantizationError
from edgemed.core.limits import max_threads
from edgemed.export.quant_data import Labelled
from edgemed.export.tune_gates import DEFAULT_MAX_CLASS_DROP, MIN_AGREEMENT, Tuner
from edgemed.export.tune_result import Candidate, Outcome, TuneResult
from edgemed.runtime.engines import engine_entry, engine_names
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.onnx.file import read_model_file
from edgemed.runtime.onnx.integrity import verify_model
from edgemed.runtime.ops.timing import interleaved

MIN_GAIN = 0.05  # a reduced-precision variant must be this much faster than the best fp32 one to be chosen
OUTPUTS = ("tune.json", "tune.md", "tuned.json", "model.tuned.onnx", "model.tuned.onnx.sha256")

__all__ = ["DEFAULT_MAX_CLASS_DROP", "MIN_AGREEMENT", "MIN_GAIN", "Candidate", "Outcome", "TuneResult", "candidates",
           "tune", "tune_file"]


def candidates(device_threads: int, thread_options: list[int] | None = None,
               engines: tuple[str, ...] | None = None) -> tuple[list[Candidate], list[str]]:
    """Every candidate on the engines available here (or `engines`), and a note per registered engine that is
    not."""
    threads = thread_options or sorted({1, max(1, min(device_threads, max_threads()))})
    out, notes = [], []
    for name in engines or engine_names():
        entry = engine_entry(name)
        if not entry.available():
            notes.append(f"{name} is not available here (pip install 'edgemed[{entry.extra}]' and its hardware): "
                         "not tried")
            continue
        variants = entry.variants()
        for t in threads:
            out += [Candidate(name, "fp32", t, g) for g in entry.graph_levels]
            out += [Candidate(name, p, t) for p in variants if p != "fp32"]
    return out, notes


def tune(model: Path, device: str, calibration: Labelled, validation: Labelled, out: Path, cache: Path,
         max_drop: float = 0.5, max_class_drop: float = DEFAULT_MAX_CLASS_DROP, runs: int = 200,
         threads: list[int] | None = None, force: bool = False) -> TuneResult:
    """Gate, time and choose; write tune.json, tune.md and (when one is chosen) model.tuned.onnx with its sidecar
    and tuned.json into `out`."""
    check_output_folder(out, OUTPUTS, force, (model,), what="`out`")
    tuner = Tuner(model, device, calibration, validation, cache, max_drop, max_class_drop, runs)
    if tuner.spec.streaming is not None:
        raise QuantizationError("tune takes the batch export; streaming models are tuned through their batch model")
    found, notes = candidates(tuner.device.threads, threads)
    outcomes = [Outcome(c) for c in found]
    survivors = {o.candidate: m for o in outcomes if (m := tuner.gate(o.candidate, o)) is not None}
    _time(tuner, outcomes, survivors, runs)
    _apply_budgets(tuner, outcomes)
    chosen = _choose(outcomes, notes)
    result = TuneResult(str(model), tuner.reference.sha256, tuner.device.to_dict(),
                        float(tuner.ref_report["macro_f1"]), outcomes, chosen, tuner.cached, notes)
    _write(result, tuner, out, force)
    return result


def _time(tuner: Tuner, outcomes: list[Outcome], survivors: dict[Candidate, EdgeModel], runs: int) -> None:
    """Interleaved batch-1 timing of the survivors on the same input, and their memory in a fresh process."""
    if not survivors:
        return
    feeds = tuner.validation.feeds(0, 1, tuner.spec)
    times = interleaved({c: (lambda m=m: m.run(feeds)) for c, m in survivors.items()}, runs, warmup=10)
    for o in outcomes:
        if o.candidate in times:
            t = np.asarray(times[o.candidate])
            o.p50_us, o.p90_us = float(np.median(t)), float(np.percentile(t, 90))
            o.memory_mb = tuner.memory_mb(o.candidate, survivors[o.candidate].path)


def _apply_budgets(tuner: Tuner, outcomes: list[Outcome]) -> None:
    budget_us = tuner.device.latency_budget_ms * 1000
    for o in outcomes:
        if o.status != "passed":
            continue
        if o.p50_us is not None and o.p50_us > budget_us:
            o.status, o.reason = "too slow", f"p50 {o.p50_us:.0f} us > budget {budget_us:.0f} us"
        elif o.memory_mb is not None and o.memory_mb > tuner.device.memory_budget_mb:
            o.status, o.reason = "over memory", f"{o.memory_mb:.0f} MB > budget {tuner.device.memory_budget_mb} MB"


def _choose(outcomes: list[Outcome], notes: list[str]) -> Outcome | None:
    """The fastest that passed; a reduced-precision one only when clearly faster than the best exact one."""
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
    return chosen


def _write(result: TuneResult, tuner: Tuner, out: Path, force: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "tune.json", json.dumps(result.to_dict(), indent=1), replace=force)
    write_bytes_atomic(out / "tune.md", result.markdown(), replace=force)
    chosen = result.chosen
    if not chosen:
        return
    source = tuner.variant_file(chosen.candidate)
    data, summary = read_model_file(source)  # the cached variant is checked like any model before it ships
    verify_model(source, data, summary, strict=True)
    target = out / "model.tuned.onnx"
    write_together({target: data, sidecar_path(target): f"{hashlib.sha256(data).hexdigest()}  {target.name}\n"
                    .encode()}, replace=force)
    c = chosen.candidate
    write_bytes_atomic(out / "tuned.json", json.dumps({
        "schema": "edgemed.tuned/1", "file": "model.tuned.onnx", "backend": c.backend,
        "precision": c.runtime_precision, "threads": c.threads, "graph_optimization": c.graph,
        "variant": c.precision, "p50_us": chosen.p50_us, "device": tuner.device.name}, indent=1), replace=force)


def tune_file(model: Path, device: str, out: Path, *, calibration: str | None = None,
              validation: str | None = None, cache: Path | None = None, **options: Any) -> TuneResult:
    """`edgemed tune` as a library call: verify `model` strictly, read its data (as `quantize_file` does) and tune
    (`options`: max_drop, max_class_drop, runs, threads, force). The cache defaults to ~/.cache/edgemed/tune."""
    from edgemed.export.quant_data import quantization_data
    from edgemed.runtime.onnx.info import describe
    from edgemed.runtime.onnx.integrity import verify_file

    verify_file(model)
    meta = describe(model).metadata
    if meta.spec is None:
        raise QuantizationError(f"{model}: no edgemed spec; tune takes models exported by edgemed")
    check_output_folder(out, OUTPUTS, options.get("force", False), (model,), what="`out`")
    cal, val = quantization_data(meta.spec, meta.provenance, calibration, validation)
    cache = cache or Path.home() / ".cache" / "edgemed" / "tune"
    return tune(model, device, cal, val, out, cache, **options)
