"""Beat detection in noise: every DS1 record of ../shared/data/mitdb with noise added at falling signal-to-noise
ratios, matched to the reference beats by the EC57 rule (150 ms; ventricular flutter left out).

The MIT-BIH Noise Stress Test Database is not in ../shared, so the noise is generated, seeded, in the spirit of its
three kinds and of its SNR definition (signal: the median QRS peak-to-peak amplitude squared over 8; noise: its
variance): muscle artefact (white noise band-limited to 5-50 Hz, the QRS band), electrode motion (bursts of
low-frequency noise, 0.5-8 Hz, a second long, at random), and baseline wander (0.05-0.5 Hz). Every lead gets
independent noise of the same SNR.
Usage: python benchmarks/qrs_noise.py [--snr 24,12,6,0] [--records 101,106] [--docs]
"""

from __future__ import annotations

import argparse

import numpy as np
from qrs import read_mlii_first

from edgemed.core.readers import wfdb
from edgemed.core.signal import butter_bandpass_sos, sosfilt
from edgemed.runtime.ecg.detector import detect_beats
from edgemed.runtime.ecg.ec57 import excluded_intervals, match, outside, reference_beats

from common import ROOT, markdown_table, write_results

MITDB = ROOT.parent / "shared" / "data" / "mitdb"


def _band(x: np.ndarray, fs: float, low: float, high: float) -> np.ndarray:
    return sosfilt(butter_bandpass_sos(2, low, high, fs), x[None])[0][0]


def noise(kind: str, n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise of one kind, `n` samples."""
    white = rng.standard_normal(n + int(10 * fs))
    if kind == "muscle":
        out = _band(white, fs, 5.0, 50.0)
    elif kind == "electrode motion":
        bursts = np.zeros_like(white)
        for start in rng.integers(0, len(white) - int(fs), size=max(1, len(white) // int(10 * fs))):
            bursts[start : start + int(fs)] = 1.0
        out = _band(white, fs, 0.5, 8.0) * (0.2 + bursts)
    else:
        out = _band(white, fs, 0.05, 0.5)
    out = out[int(10 * fs) :]
    return out / out.std()


def qrs_power(signal: np.ndarray, beats: np.ndarray, fs: float) -> float:
    """NSTDB's signal power: the median QRS peak-to-peak amplitude, squared, over 8."""
    half = int(0.05 * fs)
    p2p = [np.ptp(signal[max(b - half, 0) : b + half]) for b in beats[1:-1]]
    return float(np.median(p2p)) ** 2 / 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr", default="24,12,6,0", help="comma-separated SNRs in dB")
    parser.add_argument("--kinds", default="muscle,electrode motion,baseline wander")
    parser.add_argument("--records", help="comma-separated DS1 records (default: all)")
    parser.add_argument("--docs", action="store_true", help="write docs/results/qrs_noise.md")
    args = parser.parse_args()
    names = args.records.split(",") if args.records else wfdb.record_names(MITDB)
    snrs = [float(s) for s in args.snr.split(",")]
    kinds = args.kinds.split(",")
    records = []
    for name in names:
        x, fs, ann = read_mlii_first(name)
        ref, _ = reference_beats(ann)
        records.append((name, x, fs, ref, excluded_intervals(ann, x.shape[1])))
    rows = []
    for kind in kinds:
        for snr in [None, *snrs]:
            fn = fp = beats = 0
            for k, (_, x, fs, ref, intervals) in enumerate(records):
                noisy = x.copy()
                if snr is not None:
                    rng = np.random.default_rng(k)
                    for lead in range(x.shape[0]):
                        scale = np.sqrt(qrs_power(x[lead], ref, fs) / 10 ** (snr / 10))
                        noisy[lead] += scale * noise(kind, x.shape[1], fs, rng)
                kept = ref[outside(ref, intervals)]
                det = detect_beats(noisy, fs)
                m = match(kept, det[outside(det, intervals)], fs)
                fn, fp, beats = fn + m.fn, fp + m.fp, beats + len(kept)
            rows.append([kind, "clean" if snr is None else f"{snr:g}", f"{100 * (beats - fn) / beats:.2f}",
                         f"{100 * (beats - fn) / max(beats - fn + fp, 1):.2f}", fn, fp])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    table = markdown_table(["noise", "SNR dB", "Se %", "+P %", "missed", "false"], rows)
    print(table)
    if args.docs:
        write_results("qrs_noise", "Beat detection in noise (DS1 with generated noise)", table,
                      f"{len(names)} records, both leads, seeded noise; the first row of each kind is the clean "
                      "signal. Generated noise is not the Noise Stress Test Database's recorded noise: these rows "
                      "rank the detector's weak points, they are not comparable with published NSTDB figures.")


if __name__ == "__main__":
    main()
