"""Helpers shared by the benchmarks: building benchmark models and timing callables interleaved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemed.runtime.timing import interleaved  # noqa: F401  (re-exported for the benchmarks)

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
