"""Profiling probes outside the timed loop: cold start in a fresh interpreter, and onnxruntime's per-operator
profile."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.errors import IntegrityError
from edgemed.runtime.onnx.file import read_model_file

COLD_START = """
import json, sys, time
t0 = time.perf_counter_ns()
import numpy as np
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.engines.providers import DEFAULT_DEVICE
from edgemed.core.examples import example_inputs
t1 = time.perf_counter_ns()
m = EdgeModel(sys.argv[1], device=sys.argv[2], threads=int(sys.argv[3]), backend=sys.argv[5], precision=sys.argv[6])
t2 = time.perf_counter_ns()
feeds = example_inputs(m.spec, json.loads(sys.argv[4]))
m.run(feeds)
t3 = time.perf_counter_ns()
print(json.dumps({"import_ms": (t1 - t0) / 1e6, "session_ms": (t2 - t1) / 1e6, "first_inference_ms": (t3 - t2) / 1e6,
                  "torch_imported": "torch" in sys.modules}))
"""


@dataclass
class ColdStart:
    import_ms: float = 0.0
    session_ms: float = 0.0
    first_inference_ms: float = 0.0
    torch_imported: bool = False
    error: str | None = None

    @property
    def total_ms(self) -> float:
        return self.import_ms + self.session_ms + self.first_inference_ms

    def to_dict(self) -> dict[str, Any]:
        if self.error:
            return {"error": self.error}
        return {**dataclasses.asdict(self), "total_ms": self.total_ms}


@dataclass
class OpTime:
    op: str
    us_per_run: float
    share: float


def cold_start(path: Path, device: str, threads: int, sizes: dict[str, int], backend: str = "onnxruntime",
               precision: str = "fp32") -> ColdStart:
    """Import, session creation and first inference, measured in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", COLD_START, str(path), device, str(threads), json.dumps(sizes),
                           backend, precision], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return ColdStart(error=(proc.stderr.strip().splitlines() or ["failed"])[-1])
    return ColdStart(**json.loads(proc.stdout.strip().splitlines()[-1]))


def per_op(path: Path, providers: list[str], threads: int, buffers: list[dict[str, np.ndarray]], runs: int = 20,
           top: int = 10, sha256: str | None = None) -> list[OpTime]:
    """onnxruntime's own profiler: total kernel time per op type, largest first, on the providers the profiled
    session actually got."""
    import onnxruntime as ort

    from edgemed.runtime.engines.providers import session_options

    data, _ = read_model_file(path)  # the same checked bytes the model was loaded from
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityError(f"{path}: changed since it was loaded; profile it again")
    opts = session_options(threads, spinning=False)
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(data, opts, providers=providers)
        for k in range(runs):
            sess.run(None, buffers[k % len(buffers)])
        events = json.loads(Path(sess.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            totals[e["args"]["op_name"]] += e["dur"] / runs
    whole = sum(totals.values()) or 1.0
    return [OpTime(op, us, us / whole) for op, us in sorted(totals.items(), key=lambda kv: -kv[1])[:top]]
