"""Held-back data through PyTorch and through the edgemed runtime, metrics side by side (used by `make demo`).

Usage: python scripts/demo_compare.py CHECKPOINT MODEL.ONNX OUT.npz [--samples N] [--seed S]
The held-back set comes from the checkpoint's own data source with another seed (new synthetic patients),
is saved to OUT.npz for `edgemed run`, and is classified by both; the table shows where they differ.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from edgemed.core.metrics import classification_report
from edgemed.runtime.model import EdgeModel
from edgemed.train.checkpoint import load_checkpoint
from edgemed.train.data import load_data
from edgemed.train.predict import predict_proba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("onnx", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    model, ckpt = load_checkpoint(args.checkpoint)
    prov = ckpt["provenance"]
    options = {**prov.get("data_options", {}), "samples": args.samples}
    held = load_data(prov["data"], seed=args.seed, options=options)
    np.savez(args.out, X=held.X, y=held.y, label_names=np.array(held.labels))
    torch.set_num_threads(1)
    torch_probs = predict_proba(model, held)
    runtime = EdgeModel(args.onnx, threads=1)
    ort_probs = runtime.predict(held.X, lengths=held.lengths).probabilities
    ref = classification_report(held.y, torch_probs, held.labels)
    got = classification_report(held.y, ort_probs, held.labels)
    print(f"held-back data: {len(held)} samples of {prov['data']} (seed {args.seed}, unseen patients)")
    print(f"{'class':<10}{'support':>8}   {'PyTorch sens':>12}{'spec':>7}   {'runtime sens':>12}{'spec':>7}")
    for name in held.labels:
        a, b = ref["per_class"][name], got["per_class"][name]
        print(f"{name:<10}{a['support']:>8}   {a['sensitivity']:>12.3f}{a['specificity']:>7.3f}   "
              f"{b['sensitivity']:>12.3f}{b['specificity']:>7.3f}")
    agree = float((torch_probs.argmax(1) == ort_probs.argmax(1)).mean())
    print(f"macro-F1: PyTorch {ref['macro_f1']:.4f}, runtime {got['macro_f1']:.4f}; top-1 agreement {agree:.2%}; "
          f"max probability difference {np.abs(torch_probs - ort_probs).max():.2e}")


if __name__ == "__main__":
    main()
