"""Patient-wise k-fold cross-validation: every group (patient, record) is tested exactly once, by a model that
never saw it, so the pooled figures are what a new patient should expect (not a beat-level split).

Folds are balanced per class: groups are placed, rarest-class-richest first, in the fold where they least
unbalance the per-class shares (a few records hold most S beats in MIT-BIH, and a fold without any would tell
nothing about S). Inside each fold's training groups a patient-wise validation split steers early stopping and
fits the temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.metrics import classification_report
from edgemed.train.builder import build_for_data
from edgemed.train.data.dataset import Dataset
from edgemed.train.predict import predict_proba
from edgemed.train.split import DEFAULT_VAL_FRACTION, group_split
from edgemed.train.trainer import TrainConfig, seed_everything, train


def patient_folds(ds: Dataset, k: int, seed: int = 0) -> list[list[str]]:
    """`k` lists of group names, each group in exactly one, per-class counts as even as the groups allow."""
    groups = ds.groups.astype(str)
    names = np.unique(groups)
    if not 2 <= k <= len(names):
        raise DataError(f"{ds.source}: {k}-fold cross-validation needs between 2 and {len(names)} folds "
                        f"(one group at least per fold)")
    classes = len(ds.labels)
    counts = {g: np.bincount(ds.y[groups == g], minlength=classes).astype(np.float64) for g in names}
    total = np.maximum(sum(counts.values()), 1.0)
    rarity = np.argsort(total)  # rarest class first
    rng = np.random.default_rng(seed)
    order = sorted(rng.permutation(names), key=lambda g: tuple(-counts[g][c] / total[c] for c in rarity))
    folds: list[list[str]] = [[] for _ in range(k)]
    load = np.zeros((k, classes))
    for n, g in enumerate(order):
        # The k richest in rare classes seed one fold each; every later group goes where the sum of squared
        # per-class shares grows least (spreading each class across the folds).
        growth = (((load + counts[g]) / total) ** 2 - (load / total) ** 2).sum(axis=1)
        best = n if n < k else int(np.argmin(growth))
        folds[best].append(str(g))
        load[best] += counts[g]
    return [sorted(f) for f in folds]


@dataclass
class FoldResult:
    fold: int
    test_groups: list[str]
    val_groups: list[str]
    report: dict[str, Any]
    best_epoch: int
    temperature: float | None


@dataclass
class CrossValidation:
    labels: tuple[str, ...]
    folds: list[FoldResult]
    pooled: dict[str, Any]  # every sample predicted once, by the fold that held it out
    config: dict[str, Any] = field(default_factory=dict)
    probabilities: np.ndarray | None = field(default=None, repr=False)  # out-of-fold, per sample (not in JSON)

    def summary(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """Per class and metric (sensitivity, ppv, f1): mean and standard deviation over the folds that hold the
        class, and the pooled value."""
        out = {}
        for c in self.labels:
            out[c] = {}
            for metric in ("sensitivity", "ppv", "f1"):
                values = [f.report["per_class"][c][metric] for f in self.folds
                          if f.report["per_class"][c]["support"] > 0]
                values = [v if v is not None else 0.0 for v in values]
                out[c][metric] = {"mean": float(np.mean(values)) if values else None,
                                  "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                                  "pooled": self.pooled["per_class"][c][metric]}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgemed.cross_validation/1", "labels": list(self.labels), "config": self.config,
                "summary": self.summary(), "pooled": self.pooled,
                "folds": [{"fold": f.fold, "test_groups": f.test_groups, "val_groups": f.val_groups,
                           "best_epoch": f.best_epoch, "temperature": f.temperature, "report": f.report}
                          for f in self.folds]}

    def markdown(self) -> str:
        def cell(v: dict[str, float | None]) -> str:
            if v["mean"] is None:
                return "-"
            return f"{100 * v['mean']:.1f} ± {100 * v['sd']:.1f}" if v["sd"] is not None else f"{100 * v['mean']:.1f}"

        def pooled(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.1f}"

        s = self.summary()
        lines = [f"{len(self.folds)}-fold patient-wise cross-validation ({self.pooled['n']:,} samples, each "
                 "predicted once by the model that did not train on its group).", "",
                 "| class | samples | Se % (mean ± sd) | +P % (mean ± sd) | F1 % (mean ± sd) | Se % pooled | "
                 "+P % pooled | F1 % pooled |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for c in self.labels:
            m = s[c]
            lines.append(f"| {c} | {self.pooled['per_class'][c]['support']:,} | {cell(m['sensitivity'])} | "
                         f"{cell(m['ppv'])} | {cell(m['f1'])} | {pooled(m['sensitivity']['pooled'])} | "
                         f"{pooled(m['ppv']['pooled'])} | {pooled(m['f1']['pooled'])} |")
        lines += ["", f"Pooled macro-F1 {100 * self.pooled['macro_f1']:.1f} %, accuracy "
                  f"{100 * self.pooled['accuracy']:.1f} %.", "", "| fold | test groups | macro-F1 % |",
                  "|---:|---|---:|"]
        lines += [f"| {f.fold} | {', '.join(f.test_groups)} | {100 * f.report['macro_f1']:.1f} |" for f in self.folds]
        return "\n".join(lines) + "\n"


def cross_validate(model_name: str, ds: Dataset, k: int, cfg: TrainConfig,
                   model_overrides: dict[str, Any] | None = None,
                   val_fraction: float = DEFAULT_VAL_FRACTION, progress=None) -> CrossValidation:
    """Train and test `k` times, each time holding out one fold of groups."""
    folds = patient_folds(ds, k, cfg.seed)
    groups = ds.groups.astype(str)
    probs = np.zeros((len(ds), len(ds.labels)), np.float32)
    results = []
    for i, test_groups in enumerate(folds):
        test_mask = np.isin(groups, test_groups)
        rest = ds.subset(np.flatnonzero(~test_mask))
        train_idx, val_idx = group_split(rest, val_fraction, cfg.seed + i)
        train_ds, val_ds = rest.subset(train_idx), rest.subset(val_idx)
        seed_everything(cfg.seed + i)
        model = build_for_data(model_name, train_ds, model_overrides)
        result = train(model, train_ds, val_ds, cfg)
        test = ds.subset(np.flatnonzero(test_mask))
        p = predict_proba(result.model, test)
        probs[test_mask] = p
        report = classification_report(test.y, p, ds.labels)
        results.append(FoldResult(i + 1, list(test_groups), sorted(set(val_ds.groups.astype(str).tolist())), report,
                                  result.best_epoch,
                                  result.calibration.temperature if result.calibration else None))
        if progress is not None:
            progress(i + 1, k, report)
    return CrossValidation(ds.labels, results, classification_report(ds.y, probs, ds.labels), probabilities=probs)
