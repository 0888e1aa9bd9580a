"""Latency profiling for the bedside runtime (torch-free): cold start, steady-state latency, memory, budgets.

Timing uses `time.perf_counter_ns`; warm-up runs are excluded; inputs rotate over several buffers so caches
do not flatter the numbers; variants (fp32, int8, fp16, the PyTorch original) run interleaved in one loop so
the noise of a shared machine hits them alike. The JSON written by `to_json` follows schema
`edgemed.profile/1` (README, "edgemed profile").
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.atomic import write_atomic
from edgemed.core.examples import example_inputs
from edgemed.core.spec import ModelSpec
from edgemed.runtime.inputs import read_input
from edgemed.runtime.model import EdgeModel

SCHEMA = "edgemed.profile/1"
COLD_START = """
import json, sys, time
t0 = time.perf_counter_ns()
import numpy as np
from edgemed.runtime.inputs import read_input
from edgemed.runtime.model import EdgeModel
from edgemed.core.atomic import write_atomic
from edgemed.core.examples import example_inputs
t1 = time.perf_counter_ns()
m = EdgeModel(sys.argv[1], device=sys.argv[2], threads=int(sys.argv[3]))
t2 = time.perf_counter_ns()
feeds = example_inputs(m.spec, json.loads(sys.argv[4]))
m.run(feeds)
t3 = time.perf_counter_ns()
print(json.dumps({"import_ms": (t1 - t0) / 1e6, "session_ms": (t2 - t1) / 1e6, "first_inference_ms": (t3 - t2) / 1e6,
                  "torch_imported": "torch" in sys.modules}))
"""


def default_sizes(spec: ModelSpec, batch: int) -> dict[str, int]:
    """Batch and sequence length for synthetic inputs: the spec's window when it states one."""
    pre = spec.preprocessing
    rate = pre.sampling_rate_hz or pre.frame_rate_hz
    window = pre.window or {}
    seconds = window.get("seconds") or (window.get("before_s", 0) + window.get("after_s", 0)) or None
    sizes = {"batch": batch}
    for dim in spec.inputs[0].dynamic_axes.values():
        if dim == "batch":
            continue
        if dim == "frames":
            sizes[dim] = int(window.get("frames", 8))
        elif rate and seconds and dim == "samples":
            sizes[dim] = int(round(rate * seconds))
        else:
            sizes[dim] = 100 if dim == "time" else 256
        multiple = spec.streaming.chunk_multiple if spec.streaming else 1
        sizes[dim] = max(multiple, sizes[dim] // multiple * multiple)
    return sizes


def input_buffers(spec: ModelSpec, batch: int, count: int = 8, data: np.ndarray | None = None,
                  lengths: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
    """`count` distinct input dicts: slices of real data when given, else seeded random ones from the spec."""
    if data is not None:
        n = len(data)
        if n < batch:
            data = np.concatenate([data] * (-(-batch // n)))
        starts = np.linspace(0, len(data) - batch, count).astype(int)
        out = []
        for s in starts:
            feeds = {spec.inputs[0].name: np.ascontiguousarray(data[s : s + batch], dtype=np.float32)}
            if any(t.name == "lengths" for t in spec.inputs):
                feeds["lengths"] = (lengths[s : s + batch] if lengths is not None
                                    else np.full(batch, data.shape[1], np.int64))
            out.append(feeds)
        return out
    return [example_inputs(spec, default_sizes(spec, batch), seed=k, mixed_lengths=False) for k in range(count)]


def latency_stats(times_us: np.ndarray, batch: int, budget_ms: float | None) -> dict[str, Any]:
    t = np.asarray(times_us, dtype=np.float64)
    stats = {"runs": int(t.size), "mean": float(t.mean()), "stdev": float(t.std(ddof=1)) if t.size > 1 else 0.0,
             "min": float(t.min()), "p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
             "p99": float(np.percentile(t, 99)), "p99_9": float(np.percentile(t, 99.9)), "max": float(t.max())}
    return {"latency_us": stats, "throughput_per_s": batch / (stats["mean"] / 1e6),
            "budget_miss_share": None if budget_ms is None else float((t > budget_ms * 1000).mean())}


def cold_start(path: Path, device: str, threads: int, sizes: dict[str, int]) -> dict[str, Any]:
    """Import, session creation and first inference, measured in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", COLD_START, str(path), device, str(threads), json.dumps(sizes)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["total_ms"] = result["import_ms"] + result["session_ms"] + result["first_inference_ms"]
    return result


class TorchReference:
    """The PyTorch original in a worker process (edgemed.export.torch_worker); needs the export extra."""

    def __init__(self, checkpoint: Path, buffers: list[dict[str, np.ndarray]], names: list[str], threads: int):
        self._dir = tempfile.TemporaryDirectory()
        path = Path(self._dir.name) / "inputs.npz"
        arrays = {f"{k}_{n}": b[n] for k, b in enumerate(buffers) for n in names}
        np.savez(path, count=len(buffers), names=np.array(names), **arrays)
        self.proc = subprocess.Popen([sys.executable, "-m", "edgemed.export.torch_worker", str(checkpoint), str(path),
                                      str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().strip()
        if ready != "ready":
            err = self.proc.stderr.read().strip().splitlines()
            raise RuntimeError(f"PyTorch reference did not start: {err[-1] if err else ready}")

    def run_us(self, k: int) -> float:
        self.proc.stdin.write(f"run {k}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline()) / 1e3

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        self._dir.cleanup()


def per_op(path: Path, providers: list[str], threads: int, buffers: list[dict[str, np.ndarray]], runs: int = 20,
           top: int = 10) -> list[dict[str, Any]]:
    """onnxruntime's own profiler: total kernel time per op type, largest first, on the providers the
    profiled session actually got."""
    import onnxruntime as ort

    from edgemed.runtime.providers import session_options

    opts = session_options(threads, spinning=False)
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(path), opts, providers=providers)
        for k in range(runs):
            sess.run(None, buffers[k % len(buffers)])
        events = json.loads(Path(sess.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            totals[e["args"]["op_name"]] += e["dur"] / runs
    whole = sum(totals.values()) or 1.0
    return [{"op": op, "us_per_run": us, "share": us / whole}
            for op, us in sorted(totals.items(), key=lambda kv: -kv[1])[:top]]


@dataclass
class ProfileResult:
    data: dict[str, Any]
    times: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2)


def profile(model: Path, *, device: str = "cpu", batch: int = 1, threads: int | None = None, runs: int = 200,
            warmup: int = 20, duration: float | None = None, data: Path | None = None,
            compare: list[Path] | None = None, torch_checkpoint: Path | None = None,
            with_per_op: bool = False, with_cold_start: bool = True) -> ProfileResult:
    """Profile `model` (and `compare` variants, and the PyTorch original) interleaved in one run."""
    main = EdgeModel(model, device=device, threads=threads)
    threads = main.threads
    variants = {model.name: main}
    for other in compare or []:
        key = other.name if other.name not in variants else str(other)
        variants[key] = EdgeModel(other, device=device, threads=threads)
    spec = main.spec
    real = read_input(data, spec) if data is not None else None
    buffers = input_buffers(spec, batch, data=None if real is None else real.x,
                            lengths=None if real is None else real.lengths)
    names = [t.name for t in spec.inputs] + ([t.name for t in spec.streaming.state_inputs] if spec.streaming else [])
    if spec.streaming:
        for b in buffers:
            b.update({k: v for k, v in example_inputs(spec, default_sizes(spec, batch)).items() if k not in b})
    reference = TorchReference(torch_checkpoint, buffers, names, threads) if torch_checkpoint else None
    try:
        for i in range(warmup):
            for m in variants.values():
                m.run(buffers[i % len(buffers)])
            if reference:
                reference.run_us(i)
        times: dict[str, list[float]] = {k: [] for k in variants}
        if reference:
            times["pytorch"] = []
        deadline = time.perf_counter() + duration if duration else None
        i = 0
        while (i < runs) if deadline is None else (time.perf_counter() < deadline):
            feeds = buffers[i % len(buffers)]
            for key, m in variants.items():
                t0 = time.perf_counter_ns()
                m.run(feeds)
                times[key].append((time.perf_counter_ns() - t0) / 1e3)
            if reference:
                times["pytorch"].append(reference.run_us(i))
            i += 1
    finally:
        if reference:
            reference.close()
    budget = main.device.latency_budget_ms
    arrays = {k: np.asarray(v) for k, v in times.items()}
    first = np.median(arrays[model.name])
    out_variants = {}
    for key, t in arrays.items():
        entry = latency_stats(t, batch, budget)
        entry["model"] = str(variants[key].path) if key in variants else str(torch_checkpoint)
        entry["p50_ratio_vs_first"] = float(np.median(t) / first)
        out_variants[key] = entry
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "schema": SCHEMA,
        "model": str(model),
        "sha256": main.sha256,
        "device": main.device.to_dict(),
        "emulation": main.device.emulation,
        "providers": main.providers.to_dict(),
        "batch": batch, "threads": threads, "warmup": warmup, "runs": len(arrays[model.name]),
        "inputs": real.description if real is not None else f"random from the spec, sizes {default_sizes(spec, batch)}",
        "cold_start": cold_start(model, device, threads, default_sizes(spec, 1)) if with_cold_start else None,
        "variants": out_variants,
        "peak_rss_mb": rss_mb,
        "memory_budget_mb": main.device.memory_budget_mb,
        "memory_budget_exceeded": rss_mb > main.device.memory_budget_mb,
        "per_op": per_op(model, main.providers.session_providers, threads, buffers) if with_per_op else None,
    }
    return ProfileResult(result, arrays)


def format_profile(result: dict[str, Any]) -> str:
    dev = result["device"]
    lines = [f"model {result['model']} on device {dev['name']} ({', '.join(p['name'] for p in dev['providers'])}), "
             f"{result['threads']} thread(s), batch {result['batch']}, {result['runs']} runs after "
             f"{result['warmup']} warm-up; inputs {result['inputs']}"]
    if result["emulation"]:
        lines.append(f"NOTE: {result['emulation']} (this machine is not a {dev['name']})")
    cs = result["cold_start"]
    if cs and "error" not in cs:
        lines.append(f"cold start {cs['total_ms']:.1f} ms: import {cs['import_ms']:.1f}, "
                     f"session {cs['session_ms']:.1f}, first inference {cs['first_inference_ms']:.1f} "
                     f"(torch imported: {cs['torch_imported']})")
    budget = dev["latency_budget_ms"]
    lines.append(f"{'variant':<28}{'mean':>9}{'stdev':>9}{'min':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}"
                 f"{'max':>9}{'per s':>9}{'miss':>7}{'ratio':>7}   (µs; budget {budget} ms)")
    for key, v in result["variants"].items():
        s = v["latency_us"]
        lines.append(f"{key:<28}{s['mean']:>9.0f}{s['stdev']:>9.0f}{s['min']:>9.0f}{s['p50']:>9.0f}{s['p90']:>9.0f}"
                     f"{s['p99']:>9.0f}{s['p99_9']:>9.0f}{s['max']:>9.0f}{v['throughput_per_s']:>9.0f}"
                     f"{v['budget_miss_share']:>7.1%}{v['p50_ratio_vs_first']:>7.2f}")
    lines.append(f"peak RSS {result['peak_rss_mb']:.0f} MB (budget {result['memory_budget_mb']} MB"
                 f"{', EXCEEDED' if result['memory_budget_exceeded'] else ''})")
    for op in result["per_op"] or []:
        lines.append(f"  op {op['op']:<24}{op['us_per_run']:>10.0f} µs/run {op['share']:>7.1%}")
    return "\n".join(lines)


def plot_latency(times: dict[str, np.ndarray], path: Path, title: str) -> None:
    try:
        import matplotlib
    except ImportError as exc:
        from edgemed.core.errors import EdgemedError

        raise EdgemedError("--plot needs matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(10, 3.8))
    every = np.concatenate(list(times.values())) / 1000
    bins = np.linspace(every.min(), np.percentile(every, 99.5), 80)  # shared bins; the far tail is in the CDF
    for key, t in times.items():
        ms = np.sort(t) / 1000
        hist.hist(ms, bins=bins, alpha=0.6, label=key)
        cdf.plot(ms, np.arange(1, len(ms) + 1) / len(ms), label=key)
    hist.set(xlabel="latency (ms)", ylabel="runs", title="histogram")
    cdf.set(xlabel="latency (ms)", ylabel="share of runs", title="CDF")
    for ax in (hist, cdf):
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    write_atomic(Path(path), lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
