"""Scoring throughput and distributed training time, in one run: `edgemed score` with 1 and 2 Ray workers against
a plain loop over `edgemed run` (records per minute, beats per second), and DDP training time per epoch with 1 and 2
processes (torchrun, gloo). Records: the shared MIT-BIH records when present, else synthetic ones.
Usage: python benchmarks/scale.py [--records 8] [--docs]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgemed.export.pipeline import export_target, target_from_checkpoint
from edgemed.runtime.model import EdgeModel
from edgemed.runtime.ops.run import run_file
from edgemed.runtime.ops.score import score
from edgemed.train.run import run_training
from edgemed.train.trainer import TrainConfig

from common import ROOT, markdown_table, write_results

MITDB = ROOT.parent / "shared" / "data" / "mitdb"


def _archive(work: Path, count: int) -> tuple[list[Path], str]:
    if (MITDB / "RECORDS").is_file():
        names = (MITDB / "RECORDS").read_text().split()[:count]
        return [MITDB / n for n in names], f"{len(names)} MIT-BIH records (30 min each, 2 leads, 360 Hz)"
    sys.path.insert(0, str(ROOT / "tests"))
    from edgemed.train.data.synthetic_ecg import synthetic_recording

    from helpers import write_wfdb

    paths = []
    for i in range(count):
        sig, beats, _ = synthetic_recording("mixed", 600, 360.0, 1, seed=i)
        paths.append(write_wfdb(work, f"s{i}", sig, 360.0, ["MLII"], beats))
    return paths, f"{count} synthetic records (10 min each, 1 lead, 360 Hz)"


def _train_beats(work: Path) -> Path:
    data = str(MITDB) if (MITDB / "RECORDS").is_file() else "synthetic-beats"
    options = ({"records": ["101", "106"], "leads": ["MLII"], "sampling_rate_hz": 180.0, "beat_window": (0.35, 0.45)}
               if data != "synthetic-beats" else {"samples": 20, "sampling_rate_hz": 180.0})
    run_training("beat_cnn", data, work / "run", train_cfg=TrainConfig(epochs=1, progress=False), data_options=options)
    return export_target(target_from_checkpoint(work / "run" / "model.pt"), work / "beats.onnx").path


def _ddp_epoch(nproc: int, out: Path, samples: int, epochs: int) -> float:
    command = [sys.executable, "-m", "edgemed.cli", "train", "--model", "cnn_gru", "--data", "synthetic-ecg",
               "--samples", str(samples), "--epochs", str(epochs), "--out", str(out), "-q"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    subprocess.run(command, check=True, capture_output=True)
    history = json.loads((out / "metrics.json").read_text())["history"]
    return sum(h["seconds"] for h in history) / len(history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=8)
    parser.add_argument("--train-samples", type=int, default=1600)
    parser.add_argument("--docs", action="store_true", help="write docs/results/scale.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    model = _train_beats(work)
    (work / "archive").mkdir()
    records, what = _archive(work / "archive", args.records)
    rows = []
    start = time.perf_counter()
    beats = 0
    loaded = EdgeModel(model, threads=1)
    for r in records:
        beats += len(run_file(loaded, r).rows)
    loop = time.perf_counter() - start
    rows.append(["plain loop over edgemed run (1 process)", f"{60 * len(records) / loop:.1f}", f"{beats / loop:.0f}",
                 f"{loop:.1f}", "-"])
    for workers in (1, 2):
        s = score(model, records, work / f"score{workers}", workers=workers)
        rows.append([f"edgemed score, {workers} Ray worker(s)", f"{60 * s.scored / s.seconds:.1f}",
                     f"{s.rows / s.seconds:.0f}", f"{s.seconds:.1f}", f"{60 * s.scored / s.scoring_seconds:.1f}"])
    score_table = markdown_table(["scoring", "records per minute", "beats per second", "seconds",
                                  "records per minute once Ray is up"], rows)
    print(score_table, flush=True)
    train_rows = []
    for nproc in (1, 2):
        seconds = _ddp_epoch(nproc, work / f"ddp{nproc}", args.train_samples, 2)
        train_rows.append([f"{nproc} process(es)", f"{seconds:.1f}"])
    train_table = markdown_table(["cnn_gru on synthetic ECG, DDP (gloo)", "seconds per epoch"], train_rows)
    print(train_table)
    if args.docs:
        write_results("scale", "Scoring on Ray and training with torchrun", f"Archive: {what}; a beat model "
                      f"(beat_cnn) detecting and classifying every beat.\n\n{score_table}\n\n"
                      f"{args.train_samples} synthetic 2-lead ECG windows, batch 64, 2 epochs; the time is the "
                      f"mean training time per epoch.\n\n{train_table}",
                      "Ray's seconds include starting the local Ray and its actors (about 10-40 s here); on 2 cores "
                      "two workers compete with each other and with the driver.")


if __name__ == "__main__":
    main()
