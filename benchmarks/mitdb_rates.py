"""The MIT-BIH pipeline at other databases' sampling rates: every DS1 record of ../shared/data/mitdb resampled from
360 Hz (polyphase, scipy) to each rate, its annotations moved with it, written as a WFDB record, then evaluated with
the detector by the EC57 rule (`edgemed.runtime.ecg.evaluate`, `beats="detect"`), beside the original.

What it shows: that beat detection, conditioning (resampling to the model's 180 Hz) and classification do not
depend on the rate a recording was stored at (128 Hz: MIT-BIH's supraventricular and long-term AF databases; 257 Hz:
St Petersburg INCART; 250 Hz: many Holters). These are the model's training records, so the class figures show
the rate's effect, not a new patient's figures. Needs `make mitdb` first (its int8 model) and scipy.
Usage: python benchmarks/mitdb_rates.py [--model runs/mitdb/model.int8.onnx] [--rates 128,257] [--records 101,106]
       [--docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from edgemed.core import readers
from edgemed.runtime.ecg.evaluate import evaluate
from edgemed.runtime.ecg.evaluate_report import pct
from edgemed.runtime.model import EdgeModel

from common import ROOT, markdown_table, write_results

sys.path.insert(0, str(ROOT / "tests"))
from helpers import write_wfdb  # noqa: E402  (the tests' WFDB writer: format 16 and MIT annotations)

MITDB = ROOT.parent / "shared" / "data" / "mitdb"
CLASSES = ("N", "S", "V", "F")


def write_records(names: list[str], folder: Path, change) -> Path:
    """Each DS1 record as `change(k, record)` returns it (signal, rate, annotation samples), written in `folder` as
    a WFDB record with its annotations, and the folder's RECORDS list."""
    for k, name in enumerate(names):
        rec = readers.read_recording(MITDB / name)
        sig, fs, samples = change(k, rec)
        ann = rec.annotations
        write_wfdb(folder, name, sig, float(fs), list(rec.names), samples, list(ann.symbol),
                   {i: a for i, a in enumerate(ann.aux) if a})
    (folder / "RECORDS").write_text("\n".join(names) + "\n")
    return folder


def resampled(names: list[str], fs: int, folder: Path) -> Path:
    """The records at `fs` Hz in `folder` (signal resampled, every annotation moved to its nearest sample)."""
    from scipy.signal import resample_poly

    ratio = Fraction(fs, 360)
    return write_records(names, folder, lambda _, rec: (
        resample_poly(rec.signal, ratio.numerator, ratio.denominator, axis=1), fs,
        np.round(rec.annotations.sample * fs / rec.fs).astype(np.int64)))


def row(rate: str, model: EdgeModel, data: Path, names: list[str]) -> list[object]:
    ev = evaluate(model, data, names, beats="detect")
    gross = ev.to_dict()["gross"]
    det, per = gross["detection"], gross["per_class"]
    f1 = [per[c]["f1"] or 0.0 for c in CLASSES]
    return [rate, f"{pct(det['se'])} / {pct(det['ppv'])}", det["fn"], det["fp"],
            *[f"{pct(per[c]['se'])} / {pct(per[c]['ppv'])}" for c in CLASSES], pct(sum(f1) / len(f1))]


def model_and_records(path: Path, records: str | None) -> tuple[EdgeModel, list[str]]:
    """`make mitdb`'s model (or another) and the DS1 records asked for (default: all)."""
    if not path.is_file():
        sys.exit(f"{path}: no such model; run `make mitdb` first")
    names = records.split(",") if records else readers.wfdb.record_names(MITDB)
    return EdgeModel(path, threads=1), names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "mitdb" / "model.int8.onnx")
    parser.add_argument("--rates", default="128,257", help="Comma-separated rates in Hz besides the original 360.")
    parser.add_argument("--records", help="Comma-separated DS1 records (default: all).")
    parser.add_argument("--docs", action="store_true", help="Also write docs/results/mitdb_rates.md.")
    args = parser.parse_args()
    model, names = model_and_records(args.model, args.records)
    rows = [row("360 (original)", model, MITDB, names)]
    for fs in (int(r) for r in args.rates.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(row(str(fs), model, resampled(names, fs, Path(tmp)), names))
        print(f"{fs} Hz done", flush=True)
    table = markdown_table(["rate Hz", "detection Se / +P %", "missed", "extra",
                            *[f"{c} Se / +P %" for c in CLASSES], "macro-F1 (N,S,V,F) %"], rows)
    print(table)
    if args.docs:
        notes = (f"Model `{args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}` "
                 f"on {len(names)} DS1 records (its training records: the figures show the rate's effect, not a "
                 "new patient's). Resampling by scipy's `resample_poly`; annotations moved to the nearest sample "
                 "of the new rate; EC57 matching within 150 ms, ventricular flutter left out.")
        write_results("mitdb_rates", "The MIT-BIH pipeline at other sampling rates", table, notes)


if __name__ == "__main__":
    main()
