"""Classification and rhythm in noise: every DS1 record of ../shared/data/mitdb with generated noise added to every
lead (`benchmarks/qrs_noise.py`'s kinds and SNR definition), written as a WFDB record and evaluated with the detector
by the EC57 rule (`edgemed.runtime.ecg.evaluate`, `beats="detect"`): beat classes and the runs and AF episodes a
monitor would alarm on.

What it shows: what noise does to the figures a clinician reads, above all false ventricular runs (a false VT alarm
is the commonest false alarm at the bedside). These are the model's training records, so the clean row is not a new
patient's figures; the rows below it show the noise's effect. Needs `make mitdb` first (its int8 model).
Usage: python benchmarks/mitdb_noise.py [--model runs/mitdb/model.int8.onnx] [--snr 12,6] [--kinds muscle,...]
       [--records 101,106] [--docs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from mitdb_rates import CLASSES, MITDB, model_and_records, write_records
from qrs_noise import noise, qrs_power

from edgemed.core import readers
from edgemed.runtime.ecg.ec57 import reference_beats
from edgemed.runtime.ecg.evaluate import evaluate
from edgemed.runtime.ecg.evaluate_report import pct
from edgemed.runtime.model import EdgeModel

from common import ROOT, markdown_table, write_results

EPISODES = ("V couplet", "V run", "S run", "AF")


def noisy(names: list[str], kind: str, snr: float, folder: Path) -> Path:
    """The records with `kind` noise at `snr` dB on every lead (seeded per record), in `folder`."""
    def add(k: int, rec: readers.RawRecording) -> tuple[np.ndarray, float, np.ndarray]:
        ref, _ = reference_beats(rec.annotations)
        sig, rng = rec.signal.copy(), np.random.default_rng(k)
        for lead in range(sig.shape[0]):
            sig[lead] += np.sqrt(qrs_power(sig[lead], ref, rec.fs) / 10 ** (snr / 10)) * noise(
                kind, sig.shape[1], rec.fs, rng)
        return sig, rec.fs, rec.annotations.sample

    return write_records(names, folder, add)


def row(kind: str, snr: str, model: EdgeModel, data: Path, names: list[str]) -> list[object]:
    gross = evaluate(model, data, names, beats="detect").to_dict()["gross"]
    det, per, episodes = gross["detection"], gross["per_class"], gross["episodes"]
    cells = []
    for e in EPISODES:
        c = episodes.get(e)
        cells.append(f"{pct(c['se'])} / {pct(c['ppv'])} ({c['detected']})" if c else "-")
    return [kind, snr, det["fn"] + det["fp"], *[f"{pct(per[c]['se'])} / {pct(per[c]['ppv'])}" for c in CLASSES[1:3]],
            *cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "mitdb" / "model.int8.onnx")
    parser.add_argument("--snr", default="12,6", help="Comma-separated SNRs in dB.")
    parser.add_argument("--kinds", default="muscle,electrode motion,baseline wander")
    parser.add_argument("--records", help="Comma-separated DS1 records (default: all).")
    parser.add_argument("--docs", action="store_true", help="Also write docs/results/mitdb_noise.md.")
    args = parser.parse_args()
    model, names = model_and_records(args.model, args.records)
    rows = [row("none", "clean", model, MITDB, names)]
    for kind in args.kinds.split(","):
        for snr in (float(s) for s in args.snr.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(row(kind, f"{snr:g}", model, noisy(names, kind, snr, Path(tmp)), names))
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    table = markdown_table(["noise", "SNR dB", "detection errors", "S Se / +P %", "V Se / +P %",
                            *[f"{e} Se / +P % (found)" for e in EPISODES]], rows)
    print(table)
    if args.docs:
        write_results("mitdb_noise", "Classification and rhythm in noise (DS1 with generated noise)", table,
                      f"Model `{args.model.name}` on {len(names)} DS1 records (its training records), noise on "
                      "every lead, seeded; EC57 matching within 150 ms, ventricular flutter left out; an episode "
                      "is found when a detected one of its kind overlaps it. Generated noise is not the Noise Stress "
                      "Test Database's recorded noise: the rows rank weak points, they are not comparable with "
                      "published NSTDB figures.")


if __name__ == "__main__":
    main()
