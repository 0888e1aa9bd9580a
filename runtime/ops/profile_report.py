"""A profile as text (the table `edgemed profile` prints) and as a plot (histogram and CDF, matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemed.core.atomic import write_atomic
from edgemed.runtime.ops.profile import ProfileReport


def format_profile(report: ProfileReport) -> str:
    dev = report.device
    lines = [f"model {report.model} on device {dev['name']} ({', '.join(p['name'] for p in dev['providers'])}), "
             f"{report.threads} thread(s), batch {report.batch}, {report.runs} runs after {report.warmup} warm-up; "
             f"inputs {report.inputs}"]
    if report.emulation:
        lines.append(f"NOTE: {report.emulation} (this machine is not a {dev['name']})")
    cs = report.cold_start
    if cs and not cs.error:
        lines.append(f"cold start {cs.total_ms:.1f} ms: import {cs.import_ms:.1f}, session {cs.session_ms:.1f}, "
                     f"first inference {cs.first_inference_ms:.1f} (torch imported: {cs.torch_imported})")
    budget = dev["latency_budget_ms"]
    lines.append(f"{'variant':<28}{'mean':>9}{'stdev':>9}{'min':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}"
                 f"{'max':>9}{'per s':>9}{'miss':>7}{'ratio':>7}   (µs; budget {budget} ms)")
    for key, v in report.variants.items():
        lines.append(f"{key:<28}{v.mean:>9.0f}{v.stdev:>9.0f}{v.min:>9.0f}{v.p50:>9.0f}{v.p90:>9.0f}"
                     f"{v.p99:>9.0f}{v.p99_9:>9.0f}{v.max:>9.0f}{v.throughput_per_s:>9.0f}"
                     f"{v.budget_miss_share or 0:>7.1%}{v.p50_ratio_vs_first:>7.2f}")
    lines.append(f"peak RSS {report.peak_rss_mb:.0f} MB (budget {report.memory_budget_mb} MB"
                 f"{', EXCEEDED' if report.memory_budget_exceeded else ''})")
    for op in report.per_op or []:
        lines.append(f"  op {op.op:<24}{op.us_per_run:>10.0f} µs/run {op.share:>7.1%}")
    return "\n".join(lines)


def plot_latency(times: dict[str, np.ndarray], path: Path, title: str, replace: bool = False) -> None:
    try:
        import matplotlib
    except ImportError as exc:
        from edgemed.core.errors import EdgemedError

        raise EdgemedError("`plot` needs matplotlib: pip install matplotlib") from exc
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
    write_atomic(Path(path), lambda tmp: fig.savefig(tmp, dpi=100, format="png"), replace=replace)
    plt.close(fig)
