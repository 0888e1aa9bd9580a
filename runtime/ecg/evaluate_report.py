"""An evaluation written out: JSON (everything), Markdown (the tables a reader wants) and a confusion-matrix PNG
(when matplotlib is installed), all into one folder, each file atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from edgemed.core.atomic import check_output, check_output_folder, write_bytes_atomic
from edgemed.runtime.ecg.evaluate import Evaluation


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def class_table(per_class: dict, labels: tuple[str, ...]) -> list[str]:
    lines = ["| class | reference beats | Se % | +P % | FPR % | F1 % |", "|---|---:|---:|---:|---:|---:|"]
    for c in labels:
        s = per_class[c]
        lines.append(f"| {c} | {s['reference']:,} | {pct(s['se'])} | {pct(s['ppv'])} | {pct(s['fpr'])} | "
                     f"{pct(s['f1'])} |")
    return lines


def confusion_table(conf: dict) -> list[str]:
    lines = ["| reference \\ predicted | " + " | ".join(conf["columns"]) + " |",
             "|---|" + "---:|" * len(conf["columns"])]
    for row, counts in zip(conf["rows"], conf["counts"], strict=True):
        if any(counts):
            lines.append(f"| {row} | " + " | ".join(f"{c:,}" for c in counts) + " |")
    return lines


def episode_table(episodes: dict) -> list[str]:
    """Run-by-run and AF episode figures (EC57 terms), one row per kind."""
    if not episodes:
        return []
    lines = ["| episodes | reference | detected | Se % | +P % | duration Se % | duration +P % |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, e in episodes.items():
        lines.append(f"| {kind} | {e['reference']:,} | {e['detected']:,} | {pct(e['se'])} | {pct(e['ppv'])} | "
                     f"{pct(e.get('duration_se'))} | {pct(e.get('duration_ppv'))} |")
    return lines + ["", "A run is found when a detected run of its class and kind overlaps it (150 ms tolerance); "
                    "AF durations are seconds of overlap over the reference (Se) and detected (+P) AF time.", ""]


def markdown(ev: Evaluation) -> str:
    d = ev.to_dict()
    g = d["gross"]
    lines = [f"# Evaluation of {ev.model}", "", f"Model sha256 `{ev.model_sha256}`; beats from the "
             f"{'reference annotations' if ev.beats == 'reference' else 'detector, matched to the reference'}; "
             f"{len(ev.records)} records, {g['reference_beats']:,} reference beats.", "", f"Rule: {d['rule']}.", "",
             "## Gross (all beats of all records)", "", *class_table(g["per_class"], ev.labels), ""]
    if g["detection"]:
        det = g["detection"]
        lines += [f"Beat detection: Se {pct(det['se'])} %, +P {pct(det['ppv'])} % ({det['tp']:,} matched, "
                  f"{det['fn']:,} missed, {det['fp']:,} extra).", ""]
    if g["calibration"]:
        cal = g["calibration"]
        lines += [f"Calibration on these beats: ECE {cal['ece']:.4f} over {cal['beats']:,} beats"
                  + (f"; answered {pct(cal['coverage'])} % at abstention threshold {cal['abstain_below']}"
                     if cal["abstain_below"] else "") + ".", ""]
    lines += episode_table(g["episodes"])
    lines += ["Confusion matrix (rows: reference; `extra`: detections matching no reference beat):", "",
              *confusion_table(g["confusion"]), "", "## Per record", "",
              "| record | beats | " + " | ".join(f"{c} Se % | {c} +P %" for c in ev.labels)
              + " | detection Se % | detection +P % | note |",
              "|---|---:|" + "---:|" * (2 * len(ev.labels) + 2) + "---|"]
    for r in d["records"]:
        pc = r["per_class"]
        det = r["detection"]
        det_cells = "- | -"
        if det:
            tp = det["tp"]
            det_cells = f"{pct(tp / max(tp + det['fn'], 1))} | {pct(tp / max(tp + det['fp'], 1))}"
        note = r["error"] or "; ".join(f"{r[key]} {what}" for key, what in
                                       (("edge_beats", "edge-padded"), ("flat_beats", "at a flat stretch")) if r[key])
        if r["excluded_s"]:
            note = (note + "; " if note else "") + f"{r['excluded_s']:.0f} s VF excluded"
        lines.append(f"| {r['record']} | {r['reference_beats']:,} | "
                     + " | ".join(f"{pct(pc[c]['se'])} | {pct(pc[c]['ppv'])}" for c in ev.labels)
                     + f" | {det_cells} | {note} |")
    return "\n".join(lines) + "\n"


def confusion_png(ev: Evaluation) -> bytes | None:
    """The gross confusion matrix as a PNG heat map (row-normalised colour, counts written), or None without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    conf = ev.gross
    keep = conf.counts.sum(axis=1) > 0
    if not keep.any():  # no beat at all (an unannotated record): draw the empty matrix, every row at zero
        keep[:] = True
    counts, rows = conf.counts[keep], [r for r, k in zip(conf.rows, keep, strict=True) if k]
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(conf.columns) + 2, 0.7 * len(rows) + 1.8))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(conf.columns)), conf.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    for i in range(len(rows)):
        for j in range(len(conf.columns)):
            ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=8)
    ax.set_title(f"{ev.model}: beats from {ev.beats}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


EVALUATION_FILES = ("evaluation.json", "evaluation.md", "confusion.png")


def write_evaluation(ev: Evaluation, out: Path, force: bool = False, inputs: tuple[Path, ...] = ()) -> list[Path]:
    """evaluation.json, evaluation.md and confusion.png (when matplotlib is there) in folder `out`."""
    check_output_folder(out, EVALUATION_FILES, force, inputs)
    out.mkdir(parents=True, exist_ok=True)
    files = {"evaluation.json": json.dumps(ev.to_dict(), indent=1, allow_nan=False),
             "evaluation.md": markdown(ev)}
    png = confusion_png(ev)
    if png is not None:
        files["confusion.png"] = png
    written = []
    for name in files:
        check_output(out / name, force, inputs)
    for name, content in files.items():
        write_bytes_atomic(out / name, content, replace=force)
        written.append(out / name)
    return written
