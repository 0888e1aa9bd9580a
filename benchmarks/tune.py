"""`edgemed tune` on trained models, its full table of candidates for the docs: the MIT-BIH beat classifier of
`make mitdb` (when runs/mitdb/model.onnx exists; its recorded validation records are the gate data) and a 2-lead
causal CNN-GRU trained here on synthetic ECG (as `make demo` does), both for the bedside-x86 profile.

Every candidate is gated on parity and on the clinical metrics of the validation data before it is timed; the
table says why each rejected one was rejected. A fresh cache each run, so every gate is computed.
Usage: python benchmarks/tune.py [--runs 200] [--docs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from edgemed.export.pipeline import export_target, target_from_checkpoint
from edgemed.export.quant_data import quantization_data
from edgemed.export.tune import tune
from edgemed.runtime.onnx.info import describe
from edgemed.train.run import run_training
from edgemed.train.trainer import TrainConfig

from common import ROOT, write_results

MITDB_MODEL = ROOT / "runs" / "mitdb" / "model.onnx"


def _synthetic_ecg(work: Path) -> Path:
    run_training("cnn_gru", "synthetic-ecg", work / "train", train_cfg=TrainConfig(epochs=12, progress=False),
                 data_options={"samples": 1000, "leads": 2}, model_overrides={"causal": True})
    return export_target(target_from_checkpoint(work / "train" / "model.pt"), work / "ecg.onnx").path


def _tune(model: Path, label: str, out: Path, runs: int) -> str:
    meta = describe(model).metadata
    cal, val = quantization_data(meta.spec, meta.provenance, None, None)
    result = tune(model, "bedside-x86", cal, val, out, out.parent / f"{out.name}-cache", runs=runs)
    print(result.markdown(), flush=True)
    return f"## {label}\n\n{result.markdown()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--docs", action="store_true", help="write docs/results/tune.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    sections = []
    if MITDB_MODEL.is_file():
        sections.append(_tune(MITDB_MODEL, "MIT-BIH beat classifier (`make mitdb`)", work / "mitdb", args.runs))
    else:
        print(f"{MITDB_MODEL} not found (run `make mitdb`): the beat classifier is left out")
    sections.append(_tune(_synthetic_ecg(work), "2-lead causal CNN-GRU, synthetic ECG", work / "ecg", args.runs))
    if args.docs:
        write_results("tune", "edgemed tune: every candidate, gated and timed", "\n\n".join(sections),
                      "Device profile bedside-x86 (2 threads, 50 ms latency budget). Float candidates must match the "
                      "fp32 export within 1e-4 + 1e-3 x |logit|; reduced precision needs 98 % top-1 agreement, "
                      "macro-F1 within 0.5 points and no class's sensitivity more than 2 points lower.", per_class=True)


if __name__ == "__main__":
    main()
