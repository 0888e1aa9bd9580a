"""Int8 results per instruction-set class: the same static int8 file run on this CPU, on an x86 CPU without VNNI
(qemu-x86_64 -cpu Haswell) and on aarch64 (Cortex-A76 under qemu-aarch64; set EDGEMED_AARCH64_PYTHON, see
scripts/setup_aarch64.sh), for each quantisation scheme: the largest logit difference from the fp32 model and the
labels that change. Models: a vitals GRU and a small CNN-GRU, trained briefly on the synthetic data, every product
in int8 (`min_product_weights` 0: by default the GRU's small head stays float, and its file has nothing in int8).
Usage: python benchmarks/int8_isa.py [--samples 200] [--docs]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgemed.devices.profile import ISA_CLASSES, host_isa
from edgemed.export.isa import logits_on, reachable
from edgemed.export.pipeline import export_target, target_from_checkpoint
from edgemed.export.quant_data import quantization_data
from edgemed.export.quantize import QuantMode, QuantScheme, quantize
from edgemed.runtime.model import EdgeModel
from edgemed.train.run import run_training
from edgemed.train.trainer import TrainConfig

from common import markdown_table, write_results

MODELS = {"vitals GRU (2x64)": ("gru", "synthetic-vitals", {"samples": 600}, {"hidden_size": 64, "num_layers": 2}),
          "CNN-GRU, 2-lead ECG": ("cnn_gru", "synthetic-ecg", {"samples": 400, "leads": 2}, {"causal": True})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="validation samples replayed on each class")
    parser.add_argument("--docs", action="store_true", help="write docs/results/int8_isa.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    why_not = reachable(list(ISA_CLASSES))
    classes = [c for c in ISA_CLASSES if why_not[c] is None]
    rows = []
    for label, (name, data, options, config) in MODELS.items():
        run = work / name
        run_training(name, data, run, train_cfg=TrainConfig(epochs=4, progress=False), data_options=options,
                     model_overrides=config)
        fp32 = export_target(target_from_checkpoint(run / "model.pt"), work / f"{name}.onnx").path
        spec = EdgeModel(fp32).spec
        cal, val = quantization_data(spec, EdgeModel(fp32).metadata.provenance, None, None)
        feeds = val.feeds(0, args.samples, spec)
        reference = logits_on(host_isa(), fp32, feeds)
        for scheme in (QuantScheme.U8S8, QuantScheme.U8S8_REDUCED, QuantScheme.U8U8):
            q = quantize(fp32, work / f"{name}.{scheme.value}.onnx", QuantMode.STATIC, cal, val, max_drop=100,
                         scheme=scheme, overwrite=True, min_product_weights=0).path  # every product, as a target
            # with cheaper int8 kernels would: the GRU's small head is where u8s8 saturates without VNNI
            cells = []
            for c in classes:
                got = logits_on(c, q, feeds)
                flips = int((got.argmax(1) != reference.argmax(1)).sum())
                cells.append(f"{np.abs(got - reference).max():.3f} ({flips} flips)")
            rows.append([label, scheme.value, *cells])
            print(" | ".join(rows[-1]), flush=True)
    header = ["model", "scheme", *(f"{c}{' (this CPU)' if c == host_isa() else ' (emulated)'}" for c in classes)]
    table = markdown_table(header, rows)
    print(table)
    skipped = [f"{c}: {why_not[c]}" for c in ISA_CLASSES if why_not[c]]
    if args.docs:
        write_results("int8_isa", "Int8 results per CPU class", table,
                      f"Largest |logit(int8 on that class) - logit(fp32)| over {args.samples} validation samples, "
                      "and labels that differ from fp32. The fp32 files agree across classes to about 1e-6."
                      + (" Not reachable here: " + "; ".join(skipped) if skipped else ""), per_class=True)


if __name__ == "__main__":
    main()
