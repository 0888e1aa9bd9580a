"""Patient-wise cross-validation of beat classifiers on the 22 MIT-BIH DS1 records in ../shared/data/mitdb: the
recommended recipe (the one `make mitdb` trains) and ablations of what might help (class weighting, balanced
sampling, focal loss, per-patient amplitude scaling, the template, the next-beat interval, augmentation).

Each variant is trained K times (folds of whole records, balanced per class by `patient_folds`); every beat is
predicted once by the model that did not train on its record. The table gives per-class sensitivity and positive
predictivity pooled over all beats (gross), and the spread of the per-fold values.
Usage: python benchmarks/mitdb_cv.py [--variants recipe,no-template] [--folds 5] [--epochs 12] [--docs]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from edgemed.train.cross_validation import cross_validate
from edgemed.train.data.wfdb_source import load_wfdb
from edgemed.train.recipes import MITDB_RECIPE
from edgemed.train.trainer import ClassWeighting, Loss, Sampling

from common import ROOT, markdown_table, write_results

MITDB = ROOT.parent / "shared" / "data" / "mitdb"

# name: (change to the training config, change to the model config, change to the data options)
VARIANTS = {
    "recipe": ({}, {}, {}),
    "no rhythm path": ({}, {"rr_skip": False, "morphology_dropout": 0.0}, {}),
    "no template": ({}, {"template": False}, {"template_beats": 0}),
    "no amplitude scaling": ({}, {"scale_by_template": False}, {}),
    "next-beat (full context)": ({}, {}, {"context": "full"}),
    "shuffled batches + inverse weights": ({"sampling": Sampling.SHUFFLE, "class_weighting": ClassWeighting.INVERSE},
                                          {}, {}),
    "shuffled batches + capped weights": ({"sampling": Sampling.SHUFFLE, "class_weighting": ClassWeighting.CAPPED},
                                         {}, {}),
    "focal loss": ({"loss": Loss.FOCAL}, {}, {}),
    "augmentation": ({"augment": True}, {}, {}),
    "ratios only": ({}, {}, {"rr_features": ("pre_local", "pre_long", "local_long", "pre_median", "local_cv")}),
}


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="recipe", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=MITDB_RECIPE.train.epochs)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--docs", action="store_true", help="write docs/results/mitdb_cv.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    rows, details, cache = [], [], {}
    for name in names:
        train_change, model_change, data_change = VARIANTS[name]
        options = {**MITDB_RECIPE.data, **data_change}
        key = repr(sorted(options.items()))
        if key not in cache:
            cache[key] = load_wfdb(MITDB, **options)
        ds = cache[key]
        cfg = dataclasses.replace(MITDB_RECIPE.train, epochs=args.epochs, progress=False, **train_change)
        start = time.perf_counter()
        cv = cross_validate(MITDB_RECIPE.model, ds, args.folds, cfg, {**MITDB_RECIPE.model_config, **model_change})
        minutes = (time.perf_counter() - start) / 60
        s = cv.summary()
        rows.append([name] + [f"{pct(s[c]['sensitivity']['pooled'])} / {pct(s[c]['ppv']['pooled'])}"
                              for c in ("N", "S", "V", "F")]
                    + [pct(cv.pooled["macro_f1"]), f"{minutes:.1f}"])
        details.append(f"### {name}\n\n{cv.markdown()}")
        print(" | ".join(str(c) for c in rows[-1]), flush=True)
    header = ["variant", "N Se / +P %", "S Se / +P %", "V Se / +P %", "F Se / +P %", "macro-F1 %", "minutes"]
    table = markdown_table(header, rows)
    print(table)
    if args.docs:
        write_results("mitdb_cv", "Beat classification: patient-wise cross-validation on MIT-BIH DS1",
                      f"{args.folds} folds of whole records, {args.epochs} epochs at most, pooled (gross) figures; "
                      f"the recipe: {MITDB_RECIPE.describe()}.\n\n{table}\n\n" + "\n".join(details))


if __name__ == "__main__":
    main()
