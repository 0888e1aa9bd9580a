"""`edgemed monitor` measured: every DS1 record in ../shared/data/mitdb replayed at full speed through a session
(the make-mitdb model), its ventricular-run and AF alarms against the reference annotations, the R-peak-to-label
latency (p50 and p99, in signal time, and the compute per beat), and a soak: hours of synthetic ECG streamed
through one session with the resident memory sampled every hour.

Usage: python benchmarks/monitor.py [--model runs/mitdb/model.int8.onnx] [--records 201,203] [--hours 24] [--docs]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from edgemed.core.readers import wfdb
from edgemed.runtime.ecg.ec57 import excluded_intervals, outside, reference_beats
from edgemed.runtime.ecg.episode_match import EpisodeCounts, compare, merge
from edgemed.runtime.ecg.episodes import Episode, reference_af, runs
from edgemed.runtime.ecg.evaluate_report import pct
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.monitor.profile import load_alarm_profile
from edgemed.runtime.monitor.session import Monitor
from edgemed.runtime.monitor.sources import Chunk, ReplaySource

from common import ROOT, markdown_table, write_results

MITDB = ROOT.parent / "shared" / "data" / "mitdb"
KINDS = {"ventricular_run": "V run", "atrial_fibrillation": "AF"}


def replay(model: EdgeModel, record: str) -> tuple[dict[str, EpisodeCounts], dict, float]:
    """One record through a session: its alarms compared with the annotations, its summary, the wall time."""
    source = ReplaySource(MITDB / record, speed=0.0)
    session = Monitor(model, source, load_alarm_profile("adult"), lambda r: None)
    start = time.perf_counter()
    session.run()
    seconds = time.perf_counter() - start
    fs = source.fs
    ann = wfdb.read_annotations(MITDB / record)
    skip = excluded_intervals(ann, source.signal.shape[1])  # ventricular flutter, left out as evaluate does
    detected = [Episode(KINDS[e.kind], int(e.start_s * fs), int((e.end_s or session.t) * fs),
                        int(e.evidence.get("beats", 0)))
                for e in session.engine.events if e.kind in KINDS]
    detected = [e for e in detected if outside(np.array([e.start]), skip)[0]]
    pos, cls = reference_beats(ann)
    keep = outside(pos, skip)
    reference = [e for e in runs(pos[keep], [c for c, k in zip(cls, keep, strict=True) if k]) if e.kind == "V run"]
    reference += reference_af(ann.sample, ann.aux, source.signal.shape[1])
    return compare(reference, detected, fs), session.summary(), seconds


def soak(model: EdgeModel, hours: int) -> list[tuple[int, float, int]]:
    """(hour, resident MB, beats) after each hour of synthetic ECG through one session."""
    from edgemed.train.data.synthetic_ecg import synthetic_recording

    fs = float(model.spec.preprocessing.sampling_rate_hz)
    samples: list[tuple[int, float, int]] = []

    class Hours:
        name, names, annotations = "synthetic", list(model.spec.channel_names), None

        def __init__(self) -> None:
            self.fs = fs

        def chunks(self):
            for h in range(hours):
                sig, _, _ = synthetic_recording("mixed", 3600, fs, len(self.names), seed=100 + h)
                step = int(fs)
                for k in range(0, sig.shape[1], step):
                    yield Chunk(sig[:, k : k + step])
                samples.append((h + 1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                session.state.beats))

        def close(self) -> None:
            pass

    session = Monitor(model, Hours(), load_alarm_profile("adult"), lambda r: None)
    session.run()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "mitdb" / "model.int8.onnx"))
    parser.add_argument("--records", help="comma-separated (default: every record of the folder)")
    parser.add_argument("--hours", type=int, default=24, help="hours of the soak (0: none)")
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    model = EdgeModel(args.model)
    names = args.records.split(",") if args.records else wfdb.record_names(MITDB)
    per, rows, lat50, lat99, total_s, signal_s, beats = [], [], [], [], 0.0, 0.0, 0
    for name in names:
        counts, summary, seconds = replay(model, name)
        per.append(counts)
        meta = summary["session"]
        lat50.append(meta["latency_p50_s"])
        lat99.append(meta["latency_p99_s"])
        total_s, signal_s, beats = total_s + seconds, signal_s + meta["seconds"], beats + summary["beats"]
        kinds = {e["kind"] for e in summary["events"]}
        rows.append([name, f"{summary['beats']:,}", str(len(summary["events"])), ", ".join(sorted(kinds))])
        print(" | ".join(rows[-1]), flush=True)
    gross = merge(per)
    table = markdown_table(["alarm vs annotations", "reference", "alarms", "Se %", "+P %", "duration Se %",
                            "duration +P %"],
                           [[k, str(c.reference), str(c.detected)] + [pct(v) for v in (
                               c.to_dict()["se"], c.to_dict()["ppv"], c.to_dict().get("duration_se"),
                               c.to_dict().get("duration_ppv"))] for k, c in gross.items()])
    timing = (f"{len(names)} records, {signal_s / 3600:.1f} h of ECG, {beats:,} beats in {total_s:.0f} s "
              f"({signal_s / total_s:.0f}x real time, {1e3 * total_s / max(beats, 1):.2f} ms of compute per beat). "
              f"R-peak-to-label latency in signal time: p50 {np.median(lat50):.2f} s (records' p50 from "
              f"{min(lat50):.2f} to {max(lat50):.2f} s), p99 {np.median(lat99):.2f} s (worst record "
              f"{max(lat99):.2f} s).")
    print(table, "\n", timing, sep="")
    soak_text = ""
    if args.hours:
        marks = soak(model, args.hours)
        soak_table = markdown_table(["hours of ECG", "peak resident MB", "beats"],
                                    [[str(h), f"{mb:.0f}", f"{n:,}"] for h, mb, n in marks
                                     if h in (1, 2, 6, 12, 18, 24) or h == marks[-1][0]])
        growth = marks[-1][1] - marks[0][1]
        soak_text = (f"\n\n## Soak\n\n{args.hours} hours of synthetic ECG ({marks[-1][2]:,} beats) through one "
                     f"session, as fast as it runs; peak resident memory after each hour (it grew {growth:.0f} MB "
                     f"from the first hour to the last):\n\n{soak_table}")
        print(soak_text)
    if args.docs:
        write_results("monitor", "`edgemed monitor`: DS1 replayed, latency and a soak",
                      f"Model `{Path(args.model).name}` (`make mitdb`), alarm profile `adult`, every record replayed "
                      f"at full speed. A reference ventricular run (3 or more consecutive V beats) or AF episode "
                      f"(rhythm annotations) counts as found when an alarm of its kind overlaps it; these records "
                      f"are the model's training data (DS1), so the figures show the wiring, not a new "
                      f"patient's.\n\n{table}\n\n{timing}\n\n"
                      + markdown_table(["record", "beats", "events", "alarm kinds"], rows) + soak_text)


if __name__ == "__main__":
    main()
