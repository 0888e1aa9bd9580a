"""Latency profiling for the bedside runtime (torch-free): cold start, steady-state latency, memory, budgets.

Timing uses `time.perf_counter_ns`; warm-up runs are excluded; inputs rotate over several buffers so caches do
not flatter the numbers; variants (fp32, int8, fp16, and any `Reference` such as the PyTorch original run by the
CLI in a subprocess) run interleaved in one loop so the noise of a shared machine hits them alike. The report
(`ProfileReport.to_dict`) follows schema `edgemed.profile/1` (docs: commands/profile).
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgemed.core.errors import InputError
from edgemed.core.examples import array_feeds, example_inputs, example_sizes
from edgemed.core.spec import ModelSpec
from edgemed.runtime.engines.providers import DEFAULT_DEVICE
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.ops.inputs import read_input
from edgemed.runtime.ops.probes import ColdStart, OpTime, cold_start, per_op
from edgemed.runtime.ops.profile_defaults import DEFAULT_RUNS, DEFAULT_WARMUP

SCHEMA = "edgemed.profile/1"


class Reference(Protocol):
    """Something timed beside the ONNX variants: `run_us(k)` runs input buffer k and returns microseconds."""

    def run_us(self, k: int) -> float: ...

    def close(self) -> None: ...


ReferenceFactory = Callable[[list[dict[str, np.ndarray]], int], Reference]  # (input buffers, threads) -> Reference


@dataclass
class LatencyStats:
    model: str
    runs: int
    mean: float
    stdev: float
    min: float
    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float
    throughput_per_s: float
    budget_miss_share: float | None
    p50_ratio_vs_first: float = 1.0

    @classmethod
    def of(cls, model: str, times_us: np.ndarray, batch: int, budget_ms: float | None) -> LatencyStats:
        t = np.asarray(times_us, dtype=np.float64)
        mean = float(t.mean())
        return cls(model=model, runs=int(t.size), mean=mean, stdev=float(t.std(ddof=1)) if t.size > 1 else 0.0,
                   min=float(t.min()), p50=float(np.percentile(t, 50)), p90=float(np.percentile(t, 90)),
                   p99=float(np.percentile(t, 99)), p99_9=float(np.percentile(t, 99.9)), max=float(t.max()),
                   throughput_per_s=batch / (mean / 1e6),
                   budget_miss_share=None if budget_ms is None else float((t > budget_ms * 1000).mean()))

    def to_dict(self) -> dict[str, Any]:
        stats = {k: getattr(self, k) for k in ("runs", "mean", "stdev", "min", "p50", "p90", "p99", "p99_9", "max")}
        return {"model": self.model, "latency_us": stats, "throughput_per_s": self.throughput_per_s,
                "budget_miss_share": self.budget_miss_share, "p50_ratio_vs_first": self.p50_ratio_vs_first}


@dataclass
class ProfileReport:
    model: str
    sha256: str
    device: dict[str, Any]
    emulation: str | None
    providers: dict[str, Any]
    batch: int
    threads: int
    warmup: int
    runs: int
    inputs: str
    cold_start: ColdStart | None
    variants: dict[str, LatencyStats]
    peak_rss_mb: float
    memory_budget_mb: float
    per_op: list[OpTime] | None
    times: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def memory_budget_exceeded(self) -> bool:
        return self.peak_rss_mb > self.memory_budget_mb

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "model": self.model, "sha256": self.sha256, "device": self.device,
                "emulation": self.emulation, "providers": self.providers, "batch": self.batch, "threads": self.threads,
                "warmup": self.warmup, "runs": self.runs, "inputs": self.inputs,
                "cold_start": self.cold_start.to_dict() if self.cold_start else None,
                "variants": {k: v.to_dict() for k, v in self.variants.items()}, "peak_rss_mb": self.peak_rss_mb,
                "memory_budget_mb": self.memory_budget_mb, "memory_budget_exceeded": self.memory_budget_exceeded,
                "per_op": [dataclasses.asdict(o) for o in self.per_op] if self.per_op is not None else None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def profile_sizes(spec: ModelSpec, batch: int) -> dict[str, int]:
    """Sizes for synthetic inputs: the spec's example sizes (its window length, or the family's default)."""
    return example_sizes(spec, batch)


def input_buffers(spec: ModelSpec, batch: int, count: int = 8, data: np.ndarray | None = None,
                  lengths: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
    """`count` distinct input dicts: slices of real data when given, else seeded random ones from the spec. A
    streaming model's buffers also carry zero states."""
    if data is None:
        return [example_inputs(spec, profile_sizes(spec, batch), seed=k, mixed_lengths=False) for k in range(count)]
    n = len(data)
    if n < batch:
        data = np.concatenate([data] * (-(-batch // n)))
        lengths = None if lengths is None else np.concatenate([lengths] * (-(-batch // n)))
    starts = np.linspace(0, len(data) - batch, count).astype(int)
    states = ({k: v for k, v in example_inputs(spec, profile_sizes(spec, batch)).items()
               if k in {t.name for t in spec.streaming.state_inputs}} if spec.streaming else {})
    return [{**array_feeds(spec, np.ascontiguousarray(data[s : s + batch], dtype=np.float32),
                           None if lengths is None else lengths[s : s + batch]), **states} for s in starts]


def profile(model: Path, *, device: str = DEFAULT_DEVICE, batch: int = 1, threads: int | None = None,
            runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP, duration: float | None = None,
            data: Path | None = None, compare: list[Path] | None = None,
            references: dict[str, ReferenceFactory] | None = None, with_per_op: bool = False,
            with_cold_start: bool = True, backend: str = "onnxruntime", precision: str = "fp32") -> ProfileReport:
    """Profile `model` (and `compare` variants, and the `references` the factories make for the same input
    buffers) interleaved in one run. References are closed here, whatever happens."""
    if with_per_op and backend != "onnxruntime":
        raise InputError("`per_op` uses onnxruntime's profiler; drop it for other backends")
    main = EdgeModel(model, device=device, threads=threads, backend=backend, precision=precision)
    threads = main.threads
    variants = {model.name: main}
    for other in compare or []:
        key = other.name if other.name not in variants else str(other)
        variants[key] = EdgeModel(other, device=device, threads=threads, backend=backend, precision=precision)
    spec = main.spec
    real = read_input(data, spec) if data is not None else None
    buffers = input_buffers(spec, batch, data=None if real is None else real.x,
                            lengths=None if real is None else real.lengths)
    times = _timed(variants, references or {}, buffers, threads, runs, warmup, duration)
    budget = main.device.latency_budget_ms
    arrays = {k: np.asarray(v) for k, v in times.items()}
    first = float(np.median(arrays[model.name]))
    stats = {}
    for key, t in arrays.items():
        stats[key] = LatencyStats.of(str(variants[key].path) if key in variants else key, t, batch, budget)
        stats[key].p50_ratio_vs_first = float(np.median(t) / first)
    return ProfileReport(
        model=str(model), sha256=main.sha256, device=main.device.to_dict(), emulation=main.device.emulation,
        providers=main.providers.to_dict(), batch=batch, threads=threads, warmup=warmup, runs=len(arrays[model.name]),
        inputs=real.description if real is not None else ("random from the spec, sizes " + ", ".join(
            f"{axis} {size}" for axis, size in profile_sizes(spec, batch).items())),
        cold_start=(cold_start(model, device, threads, profile_sizes(spec, 1), backend, precision) if with_cold_start
                    else None),
        variants=stats, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        memory_budget_mb=main.device.memory_budget_mb,
        per_op=(per_op(model, main.providers.session_providers, threads, buffers, sha256=main.sha256) if with_per_op
                else None),
        times=arrays)


def _timed(variants: dict[str, EdgeModel], references: dict[str, ReferenceFactory],
           buffers: list[dict[str, np.ndarray]], threads: int, runs: int, warmup: int,
           duration: float | None) -> dict[str, list[float]]:
    """Microseconds per call of every variant and reference, interleaved over the same rotating buffers, after
    `warmup` untimed rounds; `runs` rounds, or as many as fit in `duration` seconds. References are closed here."""
    made: dict[str, Reference] = {}
    try:
        for key, factory in references.items():
            made[key] = factory(buffers, threads)
        for i in range(warmup):
            for m in variants.values():
                m.run(buffers[i % len(buffers)])
            for ref in made.values():
                ref.run_us(i)
        times: dict[str, list[float]] = {k: [] for k in [*variants, *made]}
        deadline = time.perf_counter() + duration if duration else None
        i = 0
        while (i < runs) if deadline is None else (time.perf_counter() < deadline):
            feeds = buffers[i % len(buffers)]
            for key, m in variants.items():
                t0 = time.perf_counter_ns()
                m.run(feeds)
                times[key].append((time.perf_counter_ns() - t0) / 1e3)
            for key, ref in made.items():
                times[key].append(ref.run_us(i))
            i += 1
        return times
    finally:
        for ref in made.values():
            ref.close()
