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
    return f"{_processor()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; {versions}"


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def cpu_class() -> str:
    """This machine's CPU class (`edgemed.devices.profile.ISA_CLASSES`: x86-avx2, x86-vnni, x86-amx, aarch64)."""
    from edgemed.devices.profile import host_isa

    return host_isa()


def write_results(name: str, title: str, body: str, notes: str = "", per_class: bool = False) -> Path:
    """docs/results/<name>.md with the command that produced it, the date and the machine. With `per_class` the
    file holds one section per CPU class and processor: this run replaces its own and keeps the others."""
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    measured = (f"Measured by `{command}` on {dt.date.today().isoformat()}.\n\nMachine: {machine()}.\n\n"
                f"{body}\n" + (f"\n{notes}\n" if notes else ""))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    if per_class:
        sections = _sections(path.read_text()) if path.is_file() else {}
        key = f"{cpu_class()}: {_processor()}"
        sections[key] = "\n".join("#" + line if line.startswith("## ") else line for line in measured.splitlines())
        text = f"# {title}\n\n{PER_CLASS_NOTE}\n" + "".join(
            f"\n{MARK.format(k)}\n## {k}\n\n{v.strip()}\n" for k, v in sorted(sections.items()))
    else:
        text = f"# {title}\n\n{measured}"
    path.write_text(text)
    print(f"wrote {path}")
    return path


MARK = "<!-- cpu: {} -->"
PER_CLASS_NOTE = ("One section per CPU class (detected from the CPU flags: x86-avx2, x86-vnni, x86-amx, aarch64) and "
                  "processor; a run replaces its own section and keeps the others. Compare numbers only within a "
                  "section: each was measured in one run on one machine.")


def _sections(text: str) -> dict[str, str]:
    """The per-class sections of a results file (key: 'class: processor'; the heading is left out)."""
    out: dict[str, str] = {}
    parts = text.split("<!-- cpu: ")[1:]
    for part in parts:
        key, _, rest = part.partition(" -->\n")
        out[key] = rest.split("\n", 2)[2] if rest.startswith("## ") else rest
    return out


def _processor() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
