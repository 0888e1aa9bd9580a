"""Remake the tiny committed model used by the runtime-only wheel check: `python scripts/make_tiny_model.py`.

A 1-layer GRU (hidden size 4) trained briefly on synthetic vital signs and exported with edgemed, plus a
few held-out stays to run it on. Needs the train and export extras; the result needs only the runtime.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgemed.export.pipeline import export_target, target_from_checkpoint
from edgemed.train.data import load_data
from edgemed.train.run import run_training
from edgemed.train.trainer import TrainConfig

HERE = Path(__file__).resolve().parents[1] / "tests" / "data"


def main() -> None:
    work = Path(tempfile.mkdtemp())
    try:
        run_training("gru", "synthetic-vitals", work / "run", train_cfg=TrainConfig(epochs=4, progress=False),
                     model_overrides={"hidden_size": 4, "num_layers": 1}, data_options={"samples": 200})
        result = export_target(target_from_checkpoint(work / "run" / "model.pt"), HERE / "tiny_gru.onnx", force=True)
        held_out = load_data("synthetic-vitals", samples=12, seed=99)
        np.savez(HERE / "tiny_vitals.npz", X=held_out.X, lengths=held_out.lengths, y=held_out.y)
        print(f"wrote {result.path} ({result.path.stat().st_size:,} bytes) and {HERE / 'tiny_vitals.npz'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
