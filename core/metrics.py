"""Clinical classification metrics in plain numpy, so that training, export gates and the runtime share one definition.

Per class (one-vs-rest): sensitivity (recall), specificity, PPV (precision), F1 and AUROC. Macro averages
are taken over the classes present in the reference labels: a class with no examples has no defined
sensitivity, and averaging in a zero for it would misstate the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) identity, ties given half credit."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over runs of tied scores.
    _, starts, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = starts + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
) -> dict[str, Any]:
    """All metrics for predicted class probabilities `probs` of shape [n, num_classes]."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(labels)
    if probs.ndim != 2 or probs.shape[1] != k or probs.shape[0] != y_true.shape[0]:
        raise ValueError(f"probs must be [n, {k}] with n = {y_true.shape[0]}, got {probs.shape}")
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, k)
    n = int(cm.sum())
    per_class: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(labels):
        tp = cm[i, i]
        fn = cm[i].sum() - tp
        fp = cm[:, i].sum() - tp
        tn = n - tp - fn - fp
        sens, ppv = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        per_class[name] = {
            "support": int(tp + fn),
            "sensitivity": sens,
            "specificity": _ratio(tn, tn + fp),
            "ppv": ppv,
            "f1": f1 if (tp + fn) > 0 else None,
            "auroc": auroc(probs[:, i], y_true == i),
        }
    present = [c for c in per_class.values() if c["support"] > 0]

    def macro(key: str) -> float | None:
        vals = [c[key] if c[key] is not None else 0.0 for c in present]
        return float(np.mean(vals)) if vals else None

    return {
        "n": n,
        "accuracy": _ratio(np.trace(cm), n),
        "macro_f1": macro("f1"),
        "macro_sensitivity": macro("sensitivity"),
        "macro_auroc": (
            float(np.mean([c["auroc"] for c in present if c["auroc"] is not None]))
            if any(c["auroc"] is not None for c in present)
            else None
        ),
        "labels": list(labels),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def format_report(report: dict[str, Any]) -> str:
    """A fixed-width table of the per-class metrics, for terminals and closing notes."""

    def fmt(v: float | None) -> str:
        return "   -  " if v is None else f"{v:6.3f}"

    lines = [f"{'class':<14}{'support':>8} {'sens':>6} {'spec':>6} {'ppv':>6} {'f1':>6} {'auroc':>6}"]
    for name, c in report["per_class"].items():
        lines.append(
            f"{name:<14}{c['support']:>8} {fmt(c['sensitivity'])} {fmt(c['specificity'])} "
            f"{fmt(c['ppv'])} {fmt(c['f1'])} {fmt(c['auroc'])}"
        )
    lines.append(
        f"accuracy {fmt(report['accuracy'])}  macro-F1 {fmt(report['macro_f1'])}  "
        f"macro-AUROC {fmt(report['macro_auroc'])}  (n = {report['n']})"
    )
    return "\n".join(lines)
