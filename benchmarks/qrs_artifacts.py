"""Beat detection through the artifacts of the bedside: every DS1 record of ../shared/data/mitdb cut to three
minutes (from minute 5), an artifact put in at 60 s, and the beats missed and the false ones counted by the EC57
rule (150 ms) against the reference, for edgemed (both leads, and MLII alone) and the peers of
benchmarks/qrs.py (MLII), all in the same run.

Artifacts: a 50 mV spike of three samples (an electrode pop), a 200 ms burst of +20 mV, 5 s of 3 mV white noise, the
gain dropped tenfold from 60 s on, the first minute flat at 0.3 mV (a recording that starts with the leads off) and
MLII flat from 60 to 120 s with the other lead still showing the beats (MLII's lead off), and an asystole: 8 s of
each lead's median level plus 50 uV of white noise (fewer false beats is safer: a beat found in noise hides the
asystole), and a ventricular standstill: 6 s of the median level, 15 uV of noise and, every second, the record's own
mean P wave (atrial beats that do not conduct, as in complete heart block; a P wave taken for a beat hides the
pause). Reference beats where every lead is flat, or in the asystole or the standstill, are not counted (there is
no ECG to find); detections there are false.
Usage: python benchmarks/qrs_artifacts.py [--records 101,106] [--docs]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from qrs import DETECTORS, read_mlii_first

from edgemed.core.readers import wfdb
from edgemed.runtime.ecg.ec57 import excluded_intervals, match, outside, reference_beats

from common import ROOT, markdown_table, write_results

MITDB = ROOT.parent / "shared" / "data" / "mitdb"
START_S, LENGTH_S, AT_S = 300.0, 180.0, 60.0


def _artifacts(x: np.ndarray, fs: float, ref: np.ndarray) -> dict[str, tuple[np.ndarray, tuple[float, float] | None]]:
    """Each artifact: (the signal with it, the window without ECG in seconds, or None); `ref`: the reference beats,
    whose mean P wave the standstill repeats."""
    at = int(AT_S * fs)
    rng = np.random.default_rng(0)
    out: dict[str, tuple[np.ndarray, tuple[float, float] | None]] = {"clean": (x, None)}
    y = x.copy()
    y[:, at : at + 3] += 50.0
    out["spike, 50 mV"] = (y, None)
    y = x.copy()
    y[:, at : at + int(0.2 * fs)] += 20.0
    out["burst, 200 ms of 20 mV"] = (y, None)
    y = x.copy()
    y[:, at : at + int(5 * fs)] += 3.0 * rng.standard_normal((x.shape[0], int(5 * fs)))
    out["noise, 5 s of 3 mV"] = (y, None)
    y = x.copy()
    y[:, at:] *= 0.1
    out["gain / 10"] = (y, None)
    y = x.copy()
    y[:, :at] = 0.3
    out["leads off for the first minute"] = (y, (0.0, AT_S))
    y = x.copy()
    y[0, at : 2 * at] = 0.3
    out["MLII off for a minute"] = (y, None)  # the other lead still shows every beat
    y = x.copy()
    n = int(8 * fs)
    y[:, at : at + n] = np.median(x[:, at : at + n], axis=1, keepdims=True) + 0.05 * rng.standard_normal((len(x), n))
    out["asystole, 8 s of 50 uV noise"] = (y, (AT_S, AT_S + 8.0))
    y = x.copy()
    n, p0, p1 = int(6 * fs), int(0.25 * fs), int(0.06 * fs)
    waves = np.mean([x[:, r - p0 : r - p1] for r in ref if p0 <= r < x.shape[1]], axis=0)
    y[:, at : at + n] = np.median(x[:, at : at + n], axis=1, keepdims=True) + 0.015 * rng.standard_normal((len(x), n))
    for start in range(at + int(0.5 * fs), at + n - waves.shape[1], int(fs)):
        y[:, start : start + waves.shape[1]] += waves - waves[:, :1]
    out["standstill, 6 s of P waves"] = (y, (AT_S, AT_S + 6.0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", help="comma-separated (default: every record of the folder)")
    parser.add_argument("--docs", action="store_true", help="also write docs/results/qrs_artifacts.md")
    args = parser.parse_args()
    names = args.records.split(",") if args.records else wfdb.record_names(MITDB)
    totals: dict[tuple[str, str], np.ndarray] = {}
    skipped: set[str] = set()
    for name in names:
        whole, fs, ann = read_mlii_first(name)
        lo, hi = int(START_S * fs), int((START_S + LENGTH_S) * fs)
        ref, _ = reference_beats(ann)
        skip = excluded_intervals(ann, whole.shape[1])
        ref = ref[outside(ref, skip) & (ref >= lo) & (ref < hi)] - lo
        for artifact, (y, flat) in _artifacts(whole[:, lo:hi], fs, ref).items():
            counted = ref if flat is None else ref[(ref < flat[0] * fs) | (ref >= flat[1] * fs)]
            for key, fn in DETECTORS.items():
                if key in skipped:
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        det = np.asarray(fn(y, fs), dtype=np.int64)
                except ImportError:
                    skipped.add(key)
                    continue
                m = match(counted, det, fs)
                totals.setdefault((artifact, key), np.zeros(3))
                totals[(artifact, key)] += (len(counted), m.fn, m.fp)
        print(name, flush=True)
    keys = [k for k in DETECTORS if k not in skipped]
    rows = [[artifact, *[f"{int(totals[(artifact, k)][1])} / {int(totals[(artifact, k)][2])}" for k in keys]]
            for artifact in dict.fromkeys(a for a, _ in totals)]
    table = markdown_table(["artifact", *[f"{k}: missed / false" for k in keys]], rows)
    print(table)
    if args.docs:
        beats = int(totals[("clean", keys[0])][0])
        write_results("qrs_artifacts", "Beat detection through artifacts (DS1)", table,
                      f"{len(names)} records, three minutes each from minute 5 ({beats:,} reference beats when "
                      "clean), the artifact at 60 s; EC57 matching within 150 ms, ventricular flutter left out. "
                      "The peers read MLII only, so MLII's lead-off is a minute without beats for them. "
                      + ("Not installed: " + ", ".join(sorted(skipped)) + "." if skipped else ""))


if __name__ == "__main__":
    main()
