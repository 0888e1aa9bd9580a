"""Beat detection on every record of ../shared/data/mitdb, by the AAMI EC57 rule (a detection within 150 ms of a
reference beat is a match; ventricular flutter episodes left out), against wfdb's XQRS and neurokit2 on the same
records: sensitivity, positive predictivity, misses, false detections, and seconds of computing per hour of ECG.

edgemed's detector runs on both leads (and, for comparison, on MLII alone, as the others do). Needs the dev extra
(wfdb) and neurokit2 (`pip install neurokit2`); a missing peer is reported and skipped.
Usage: python benchmarks/qrs.py [--records 101,106] [--docs]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from edgemed.core.readers import wfdb
from edgemed.runtime.ecg.detector import detect_beats
from edgemed.runtime.ecg.ec57 import excluded_intervals, match, outside, reference_beats

from common import ROOT, markdown_table, write_results

MITDB = ROOT.parent / "shared" / "data" / "mitdb"


def _xqrs(x: np.ndarray, fs: float) -> np.ndarray:
    from wfdb import processing

    detector = processing.XQRS(sig=x[0], fs=fs)
    detector.detect(verbose=False)
    return np.asarray(detector.qrs_inds)


def _neurokit(x: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk

    _, info = nk.ecg_peaks(x[0], sampling_rate=int(fs))
    return np.asarray(info["ECG_R_Peaks"])


def read_mlii_first(name: str) -> tuple[np.ndarray, float, wfdb.Annotations]:
    """A DS1 record's signal [leads, samples] with MLII first (the lead the peers read alone), its rate and its
    annotations."""
    rec, ann = wfdb.read_record(MITDB / name), wfdb.read_annotations(MITDB / name)
    order = [rec.names.index("MLII")] + [i for i, n in enumerate(rec.names) if n != "MLII"]
    return rec.signal[order], rec.fs, ann


DETECTORS = {
    "edgemed (2 leads)": lambda x, fs: detect_beats(x, fs),
    "edgemed (MLII)": lambda x, fs: detect_beats(x[:1], fs),
    "wfdb XQRS (MLII)": _xqrs,
    "neurokit2 (MLII)": _neurokit,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", help="Comma-separated records (default: all).")
    parser.add_argument("--docs", action="store_true", help="Also write docs/results/qrs.md.")
    args = parser.parse_args()
    names = args.records.split(",") if args.records else wfdb.record_names(MITDB)
    totals = {k: np.zeros(4) for k in DETECTORS}  # tp, fn, fp, seconds
    per_record, hours, skipped = [], 0.0, {}
    for name in names:
        x, fs, ann = read_mlii_first(name)
        ref, _ = reference_beats(ann)
        excluded = excluded_intervals(ann, x.shape[1])
        ref = ref[outside(ref, excluded)]
        hours += x.shape[1] / fs / 3600
        row = [name, len(ref)]
        for key, fn in DETECTORS.items():
            if key in skipped:
                row.append("-")
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    det = np.asarray(fn(x, fs), dtype=np.int64)
                    seconds = time.perf_counter() - t0
            except ImportError as exc:
                skipped[key] = str(exc)
                row.append("-")
                continue
            m = match(ref, det[outside(det, excluded)], fs)
            totals[key] += (m.tp, m.fn, m.fp, seconds)
            row.append(f"{m.fn} / {m.fp}")
        per_record.append(row)
        print(" ".join(str(c) for c in row), flush=True)
    summary = []
    for key, (tp, fn, fp, seconds) in totals.items():
        if key in skipped:
            summary.append([key, "not installed", "", "", "", ""])
            continue
        summary.append([key, f"{100 * tp / (tp + fn):.2f} %", f"{100 * tp / (tp + fp):.2f} %", int(fn), int(fp),
                        f"{seconds / hours:.2f}"])
    table = markdown_table(["detector", "sensitivity", "positive predictivity", "missed", "false", "s per hour of ECG"],
                           summary)
    records = markdown_table(["record", "beats", *[f"{k}: missed / false" for k in DETECTORS]], per_record)
    print(table)
    if args.docs:
        write_results("qrs", "Beat detection on MIT-BIH (DS1)", table + "\n\nPer record:\n\n" + records,
                      f"Gross statistics over {len(names)} records ({hours:.1f} hours), EC57 matching within 150 ms; "
                      "beats inside ventricular flutter episodes (record 207) are left out, as EC57 prescribes. "
                      "Targets: sensitivity and positive predictivity at least 99.7 % (Pan and Tompkins 1985: 99.76 % "
                      "/ 99.56 %; Hamilton and Tompkins 1986: 99.69 % / 99.77 %, on the whole database).")


if __name__ == "__main__":
    main()
