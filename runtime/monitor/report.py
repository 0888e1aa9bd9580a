"""The Holter-style report of a monitoring session: one self-contained HTML file (inline CSS and SVG, nothing
fetched), readable offline: the heart-rate trend, beat counts per class per hour, the event list, and for each
event its ECG strip with the beat labels drawn on it."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222} h1{font-size:22px}
h2{font-size:18px;margin-top:28px} table{border-collapse:collapse;font-size:13px} td,th{border:1px
solid #ccc;padding:3px 8px;text-align:right} th{background:#f2f2f2} td.l{text-align:left}
.high{color:#b00020;font-weight:bold} .medium{color:#b36b00} .low{color:#555}
svg{background:#fff7f7;border:1px solid #e3c0c0;margin:4px 0} .strip{margin-bottom:18px}"""


def latency_text(meta: dict) -> str:
    """The R-peak-to-label latency of a session summary in words; none is measured without beats."""
    if meta.get("latency_p50_s") is None:
        return "no beats, so no R-peak-to-label latency"
    return f"R-peak-to-label latency p50 {meta['latency_p50_s']:.2f} s, p99 {meta['latency_p99_s']:.2f} s"


def _svg_trend(points: list[tuple[float, float]], width: int = 900, height: int = 160) -> str:
    if not points:
        return "<p>No heart rate yet.</p>"
    t = np.array([p[0] for p in points])
    hr = np.array([p[1] for p in points])
    lo, hi = max(0.0, float(hr.min()) - 10), float(hr.max()) + 10
    span = max(float(t[-1] - t[0]), 1.0)
    xs = 40 + (t - t[0]) / span * (width - 50)
    ys = height - 20 - (hr - lo) / max(hi - lo, 1.0) * (height - 30)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    ticks = "".join(f'<text x="2" y="{height - 20 - (v - lo) / max(hi - lo, 1) * (height - 30):.0f}" '
                    f'font-size="10">{v:.0f}</text>' for v in np.linspace(lo, hi, 4))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="heart rate trend">{ticks}'
            f'<polyline points="{path}" fill="none" stroke="#b00020" stroke-width="1.5"/>'
            f'<text x="{width - 140}" y="{height - 4}" font-size="11">{span / 3600:.2f} h, beats/min</text></svg>')


def _svg_strip(strip: dict[str, Any], fs: float, width: int = 900, height: int = 140) -> str:
    """One ECG strip (mV over seconds) on a 0.2 s / 0.5 mV grid, each beat's label above its R peak."""
    x = np.asarray(strip["samples"], float)
    if not x.size:
        return "<p>(no signal kept for this event)</p>"
    seconds = x.size / fs
    lo, hi = float(x.min()), float(x.max())
    scale_y = (height - 30) / max(hi - lo, 0.5)
    px = np.arange(x.size) / x.size * width
    py = height - 10 - (x - lo) * scale_y
    step = max(1, x.size // (2 * width))
    path = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px[::step], py[::step], strict=True))
    grid = "".join(f'<line x1="{g / seconds * width:.1f}" y1="0" x2="{g / seconds * width:.1f}" y2="{height}" '
                   f'stroke="#f0c8c8" stroke-width="{1.2 if round(g / 0.2) % 5 == 0 else 0.4}"/>'
                   for g in np.arange(0, seconds, 0.2))
    labels = "".join(f'<text x="{(t - strip["start_s"]) / seconds * width:.1f}" y="12" font-size="11" '
                     f'text-anchor="middle" fill="{"#b00020" if lab != "N" else "#1a4d8f"}">{html.escape(lab)}</text>'
                     for t, lab in strip["beats"] if strip["start_s"] <= t <= strip["start_s"] + seconds)
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="ECG strip">{grid}'
            f'<polyline points="{path}" fill="none" stroke="#111" stroke-width="1"/>{labels}</svg>')


def _event_row(e: dict[str, Any]) -> str:
    end = "active" if e["end_s"] is None else f"{e['end_s']:.1f}"
    evidence = html.escape(", ".join(f"{k} {v}" for k, v in e["evidence"].items()))
    return (f'<tr><td>{e["id"]}</td><td class="l {e["priority"]}">{html.escape(e["kind"])}</td>'
            f'<td class="l {e["priority"]}">{e["priority"]}</td><td>{e["start_s"]:.1f}</td><td>{end}</td>'
            f'<td class="l">{evidence}</td></tr>')


def _strip_block(e: dict[str, Any], strip: dict[str, Any], fs: float) -> str:
    end = strip["start_s"] + len(strip["samples"]) / fs
    return (f'<div class="strip"><b>#{e["id"]} {html.escape(e["kind"])}</b> ({e["priority"]} priority), '
            f'{strip["start_s"]:.1f} s to {end:.1f} s<br>{_svg_strip(strip, fs)}</div>')


def render(summary: dict[str, Any], strips: dict[int, dict[str, Any]], fs: float) -> str:
    """The report as HTML text, from the session summary (`Monitor.summary()`) and the events' strips."""
    meta = summary["session"]
    rows = "".join(f'<tr><td class="l">{h}</td>' + "".join(f"<td>{c.get(k, 0):,}</td>" for k in summary["classes"])
                   + "</tr>" for h, c in summary["beats_per_hour"].items())
    counts = (f'<table><tr><th>hour</th>{"".join(f"<th>{html.escape(k)}</th>" for k in summary["classes"])}</tr>'
              f"{rows}</table>")
    events = "".join(_event_row(e) for e in summary["events"])
    event_table = ("<table><tr><th>#</th><th>event</th><th>priority</th><th>start s</th><th>end s</th>"
                   f"<th>evidence</th></tr>{events}</table>" if events else "<p>No events.</p>")
    strip_html = "".join(_strip_block(e, strips[e["id"]], fs) for e in summary["events"] if e["id"] in strips)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgemed monitor report: {html.escape(meta["source"])}</title>
<style>{CSS}</style></head><body>
<h1>Monitoring report: {html.escape(meta["source"])}</h1>
<p>Model <code>{html.escape(meta["model"])}</code> (sha256 <code>{meta["model_sha256"][:16]}...</code>), alarm profile
<b>{html.escape(meta["profile"])}</b>; started {html.escape(meta["started"])}, {meta["seconds"] / 3600:.2f} h of
signal at {meta["fs"]:g} Hz; {summary["beats"]:,} beats; {latency_text(meta)}.</p>
<h2>Heart rate</h2>{_svg_trend([tuple(p) for p in summary["heart_rate_trend"]])}
<h2>Beats per class per hour</h2>{counts}
<h2>Events</h2>{event_table}
<h2>ECG strips</h2>{strip_html or "<p>No strips.</p>"}
<p class="low">Written by edgemed {html.escape(meta.get("edgemed", ""))}. Alarms follow the profile's thresholds and
IEC 60601-1-8 priorities; beat labels are the model's, not a diagnosis.</p>
</body></html>
"""
