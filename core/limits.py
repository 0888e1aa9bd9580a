"""Resource limits for everything edgemed reads, each with a default and an environment variable to change it.

A limit stops a crafted or mistaken input (a zip bomb, a 10 GB CSV, a header claiming a billion samples, a
sampling rate of 0.01 Hz) before it exhausts memory or time. Every refusal names the limit, the value found and
the variable that raises it.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from edgemed.core.errors import LimitError


class Limit(NamedTuple):
    default: float
    env: str
    unit: str
    what: str


MAX_SETTING = 1e12  # the largest value a limit variable may take: past it no bound is left (and inf breaks sums)

LIMITS: dict[str, Limit] = {
    "model_mb": Limit(2048, "EDGEMED_MAX_MODEL_MB", "MB", "ONNX model file size"),
    "input_mb": Limit(2048, "EDGEMED_MAX_INPUT_MB", "MB", "input file size"),
    "array_mb": Limit(4096, "EDGEMED_MAX_ARRAY_MB", "MB", "decompressed array size in memory"),
    "npy_header_bytes": Limit(10_000, "EDGEMED_MAX_NPY_HEADER", "bytes", ".npy header length"),
    "csv_rows": Limit(20_000_000, "EDGEMED_MAX_CSV_ROWS", "rows", "CSV rows"),
    "bundle_mb": Limit(4096, "EDGEMED_MAX_BUNDLE_MB", "MB", "bundle size, uncompressed"),
    "bundle_members": Limit(256, "EDGEMED_MAX_BUNDLE_FILES", "files", "files in a bundle"),
    "zip_ratio": Limit(200, "EDGEMED_MAX_ZIP_RATIO", "x", "compression ratio of a zip member"),
    "metadata_mb": Limit(64, "EDGEMED_MAX_METADATA_MB", "MB", "ONNX metadata size"),
    "graph_nodes": Limit(1_000_000, "EDGEMED_MAX_GRAPH_NODES", "nodes", "ONNX graph nodes, local functions inlined"),
    "header_lines": Limit(4096, "EDGEMED_MAX_HEADER_LINES", "lines", "WFDB header length"),
    "channels": Limit(1024, "EDGEMED_MAX_CHANNELS", "channels", "signals in one record"),
    "rate_hz": Limit(100_000, "EDGEMED_MAX_RATE_HZ", "Hz", "sampling rate"),
    "threads_per_core": Limit(1, "EDGEMED_MAX_THREADS_PER_CORE", "threads per core", "intra-op threads"),
    "image_megapixels": Limit(100, "EDGEMED_MAX_IMAGE_MEGAPIXELS", "megapixels", "image size"),
    "run_s": Limit(60, "EDGEMED_MAX_RUN_S", "s", "one engine run (a longer one is stopped)"),
    "load_s": Limit(300, "EDGEMED_MAX_LOAD_S", "s", "loading a model on an engine"),
    "engine_mb": Limit(8192, "EDGEMED_MAX_ENGINE_MB", "MB", "onnxruntime's CPU memory, all models of a process"),
}


def limit(name: str) -> float:
    """The limit's current value: its environment variable when set to a positive number, else the default."""
    spec = LIMITS[name]
    raw = os.environ.get(spec.env)
    if raw is None:
        return spec.default
    try:
        value = float(raw)
    except ValueError:
        raise LimitError(f"{spec.env}={raw!r} is not a number") from None
    if not 0 < value <= MAX_SETTING:
        raise LimitError(f"{spec.env}={raw!r} must be a positive number of at most {MAX_SETTING:g} {spec.unit}")
    return value


def limit_bytes(name: str) -> int:
    return int(limit(name) * 2**20)


def limit_count(name: str) -> int:
    """A count limit (rows, files, lines) as an int."""
    return int(limit(name))


def check(name: str, value: float, where: str, scale: float = 1.0) -> None:
    """Raise LimitError when `value` (in units of the limit times `scale`: pass 2**20 for byte counts of an MB
    limit) exceeds limit `name`."""
    spec, allowed = LIMITS[name], limit(name)
    if value > allowed * scale:
        shown = value / scale
        raise LimitError(f"{where}: {spec.what} is {shown:,.4g} {spec.unit}, over the limit of {allowed:,.4g} "
                         f"{spec.unit}; set {spec.env} to raise it if the input is genuine")


def check_file_size(path: os.PathLike | str, name: str = "input_mb") -> int:
    """The file's size in bytes, refused with LimitError past limit `name` (an MB limit)."""
    size = os.path.getsize(path)
    check(name, size, str(path), scale=2**20)
    return size


def max_threads() -> int:
    """The most intra-op threads allowed: the cores present times threads_per_core."""
    return max(1, int((os.cpu_count() or 1) * limit("threads_per_core")))


def check_threads(threads: int, where: str = "threads") -> None:
    allowed = max_threads()
    if threads > allowed:
        raise LimitError(f"{where} {threads} is more than this machine's {os.cpu_count()} core(s) allow "
                         f"({allowed}); oversubscribed threads only add latency. Set "
                         f"{LIMITS['threads_per_core'].env} (threads per core) to raise the limit")


def read_bounded(path: os.PathLike | str, max_bytes: int, what: str) -> bytes:
    """At most `max_bytes` of a small file (a sidecar, key, manifest, header or settings file), refused with
    LimitError when it is longer: nothing larger than the file's purpose is ever read into memory."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise LimitError(f"{path}: {what} is longer than {max_bytes:,} bytes; it is not one edgemed wrote")
    return data
