"""Helpers shared by the benchmarks: benchmark models, interleaved timing, and tables written to the docs.

A benchmark prints its table; with `--docs` it also writes `docs/results/<name>.md`: the table, the exact command
that measured it, the date and the machine, so every measured table in the docs comes from the script that
measured it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from edgemed.runtime.ops.timing import interleaved  # noqa: F401  (re-exported for the benchmarks)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
# The benchmark models of shared/notes/measured-2026-11.md.
VITALS = ("gru", {"input_size": 8, "hidden_size": 64, "num_layers": 2}, 100)
ECG12 = ("cnn_gru", {"leads": 12, "channels": (32, 64, 128, 128), "hidden_size": 128, "causal": True,
                     "preprocessing": {"sampling_rate_hz": 500.0}, "labels": ("N", "S", "V", "F", "Q")}, 5000)


def export_untrained(name: str, config: dict, length: int, out: Path, streaming: bool = False) -> Path:
    """Export a seeded, untrained model (latency does not depend on the weights), with parity checked."""
    import torch

    from edgemed.export.pipeline import export_target, target_from_model
    from edgemed.train.models import create_model

    torch.manual_seed(0)
    model = create_model(name, **config).eval()
    return export_target(target_from_model(model, streaming, length=length), out, force=True).path


def row(name: str, t: np.ndarray, ref: np.ndarray | None = None) -> str:
    ratio = f"{np.median(t) / np.median(ref):7.3f}" if ref is not None else "      -"
    return (f"{name:<44}{np.median(t):10.1f}{np.percentile(t, 90):10.1f}{np.percentile(t, 99):10.1f}"
            f"{t.mean():10.1f}  {ratio}")


HEADER = f"{'case':<44}{'p50 us':>10}{'p90 us':>10}{'p99 us':>10}{'mean us':>10}  vs ref"


def machine() -> str:
    versions = ", ".join(f"{p} {_version(p)}" for p in ("onnxruntime", "torch", "numpy") if _version(p))
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; {versions}"


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, title: str, body: str, notes: str = "") -> Path:
    """docs/results/<name>.md with the command that produced it, the date and the machine."""
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    text = (f"# {title}\n\nMeasured by `{command}` on {dt.date.today().isoformat()}.\n\nMachine: {machine()}.\n\n"
            f"{body}\n" + (f"\n{notes}\n" if notes else ""))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    print(f"wrote {path}")
    return path
