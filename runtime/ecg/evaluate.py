"""`edgemed evaluate`: a beat model against annotated recordings, record by record, by the AAMI EC57 rules
(numpy and onnxruntime only).

Beats come from the reference annotations (`reference`) or from the detector (`detect`), matched to the reference
within 150 ms (`edgemed.runtime.ecg.ec57.match`); with `detect`, ventricular flutter and fibrillation episodes are left
out of the comparison as EC57 says. Every reference beat is counted in the confusion matrix: classified, answered
"uncertain" (below the abstention threshold), or unclassified (missed by the detector, or in a record that could
not be read, with the reason). Detections matching no reference beat form the "extra" row: false positives of
the class they were given.

Per class (one against the rest, over the rows that are reference beats of the classes and the extra row):
Se = TP / (TP + FN), +P = TP / (TP + FP), FPR = FP / (FP + TN), F1 = 2 TP / (2 TP + FP + FN). Gross figures
pool the beats of all records; per-record figures are each record's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.calibration import expected_calibration_error
from edgemed.core.errors import EdgemedError, InputError
from edgemed.runtime.ecg.beats import EDGE, BeatClassifier
from edgemed.runtime.ecg.ec57 import excluded_intervals, match, outside, reference_beats
from edgemed.runtime.ecg.episode_match import EpisodeCounts, compare, merge
from edgemed.runtime.ecg.episodes import detected_episodes, reference_af, runs
from edgemed.runtime.ecg.flat import FLAT_STRETCH
from edgemed.runtime.ecg.recording import LeadMap, check_lead_map, list_recordings, read_recording
from edgemed.runtime.ecg.windows import AAMI_CLASSES
from edgemed.runtime.model import UNCERTAIN, EdgeModel

BEAT_SOURCES = ("reference", "detect")
UNCLASSIFIED = "unclassified"
EXTRA = "extra"


@dataclass
class Confusion:
    """Counts [reference rows, predicted columns]: rows are the reference classes then EXTRA (detections matching
    no reference beat); columns the model's labels, then UNCERTAIN and UNCLASSIFIED."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: np.ndarray

    @classmethod
    def empty(cls, labels: tuple[str, ...]) -> Confusion:
        rows = tuple(dict.fromkeys((*AAMI_CLASSES, *labels))) + (EXTRA,)
        columns = (*labels, UNCERTAIN, UNCLASSIFIED)
        return cls(rows, columns, np.zeros((len(rows), len(columns)), np.int64))

    def add(self, truth: str, predicted: str, count: int = 1) -> None:
        self.counts[self.rows.index(truth), self.columns.index(predicted)] += count

    def __iadd__(self, other: Confusion) -> Confusion:
        self.counts += other.counts
        return self

    @property
    def reference_beats(self) -> int:
        return int(self.counts[:-1].sum())

    def per_class(self, labels: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        total = int(self.counts.sum())
        out = {}
        for c in labels:
            i, j = self.rows.index(c), self.columns.index(c)
            tp = int(self.counts[i, j])
            fn = int(self.counts[i].sum()) - tp
            fp = int(self.counts[:, j].sum()) - tp
            tn = total - tp - fn - fp
            out[c] = {"reference": tp + fn, "tp": tp, "fn": fn, "fp": fp,
                      "se": _ratio(tp, tp + fn), "ppv": _ratio(tp, tp + fp), "fpr": _ratio(fp, fp + tn),
                      "f1": _ratio(2 * tp, 2 * tp + fp + fn)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows), "columns": list(self.columns), "counts": self.counts.tolist()}


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass
class RecordEvaluation:
    record: str
    confusion: Confusion
    beats: int  # reference beats counted
    detection: dict[str, int] | None = None  # tp, fn, fp with --beats detect
    excluded_s: float = 0.0  # seconds of VF left out (detect)
    error: str | None = None  # why the record could not be classified (its beats count as unclassified)
    edge_beats: int = 0  # beats whose window was padded at the record's ends
    flat_beats: int = 0  # beats whose window reached into a flat stretch (no class for runs and AF)
    calibration: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # (probs, truth index)
    episodes: dict[str, EpisodeCounts] = field(default_factory=dict)  # runs and AF against the reference


@dataclass
class Evaluation:
    model: str
    model_sha256: str
    labels: tuple[str, ...]
    beats: str
    records: list[RecordEvaluation]
    abstain_below: float | None = None
    source_folder: Path | None = None  # the WFDB folder evaluated, resolved

    @property
    def gross(self) -> Confusion:
        total = Confusion.empty(self.labels)
        for r in self.records:
            total += r.confusion
        return total

    def detection(self) -> dict[str, Any] | None:
        if self.beats != "detect":
            return None
        tp, fn, fp = (sum(r.detection[k] for r in self.records if r.detection) for k in ("tp", "fn", "fp"))
        return {"tp": tp, "fn": fn, "fp": fp, "se": _ratio(tp, tp + fn), "ppv": _ratio(tp, tp + fp)}

    def calibration(self) -> dict[str, Any] | None:
        """ECE of the model's probabilities on the classified reference beats of its classes, and coverage."""
        parts = [r.calibration for r in self.records if r.calibration is not None and len(r.calibration[1])]
        if not parts:
            return None
        probs = np.concatenate([p for p, _ in parts])
        truth = np.concatenate([t for _, t in parts])
        answered = (probs.max(axis=1) >= self.abstain_below) if self.abstain_below else np.ones(len(truth), bool)
        return {"ece": expected_calibration_error(probs, truth), "beats": int(len(truth)),
                "abstain_below": self.abstain_below, "coverage": float(answered.mean())}

    def episodes(self) -> dict[str, Any]:
        """Gross run-by-run and AF episode figures (`edgemed.runtime.ecg.episode_match`)."""
        return {kind: c.to_dict() for kind, c in merge([r.episodes for r in self.records]).items()}

    def to_dict(self) -> dict[str, Any]:
        gross = self.gross
        return {
            "schema": "edgemed.evaluation/1", "model": self.model, "model_sha256": self.model_sha256,
            "beats": self.beats, "labels": list(self.labels), "rule": RULE,
            "gross": {"reference_beats": gross.reference_beats, "per_class": gross.per_class(self.labels),
                      "confusion": gross.to_dict(), "detection": self.detection(),
                      "calibration": self.calibration(), "episodes": self.episodes()},
            "records": [{"record": r.record, "reference_beats": r.beats, "error": r.error,
                         "edge_beats": r.edge_beats, "flat_beats": r.flat_beats,
                         "excluded_s": round(r.excluded_s, 2),
                         "detection": r.detection, "per_class": r.confusion.per_class(self.labels),
                         "episodes": {kind: c.to_dict() for kind, c in r.episodes.items()},
                         "confusion": r.confusion.to_dict()} for r in self.records],
        }


RULE = ("AAMI EC57: a detection within 150 ms of a reference beat matches it; per class Se = TP/(TP+FN), "
        "+P = TP/(TP+FP), FPR = FP/(FP+TN); gross figures pool all beats of all records")


def _truth_index(labels: tuple[str, ...], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    keep = np.array([c in labels for c in classes], bool)
    return keep, np.array([labels.index(c) for c, k in zip(classes, keep, strict=True) if k], np.int64)


def evaluate_record(classifier: BeatClassifier, path, beats: str, lead_map: LeadMap | None = None
                    ) -> RecordEvaluation:
    """One annotated record: every reference beat counted, by the EC57 rule with `beats="detect"`."""
    labels = classifier.model.labels
    conf = Confusion.empty(labels)
    name = getattr(path, "name", str(path))
    try:
        rec = read_recording(path, classifier.model.spec, lead_map=lead_map)
    except InputError as exc:
        return _unreadable(conf, name, path, str(exc))
    if rec.annotations is None:
        raise InputError(f"record {rec.name}: no reference annotations (.atr) to evaluate against")
    ref_pos, ref_cls = reference_beats(rec.annotations)
    if beats == "reference":
        try:
            table = classifier.classify(rec.signal, rec.fs, ref_pos, rec.model_leads, rec.name)
        except InputError as exc:
            return _counted_unclassified(conf, rec.name, ref_cls, str(exc))
        order = np.argsort(ref_pos, kind="stable")
        truth = [ref_cls[i] for i in order]
        for t, p in zip(truth, table.labels, strict=True):
            conf.add(t, p)
        keep, idx = _truth_index(labels, truth)
        episodes = _episodes(rec, np.sort(ref_pos), truth, table.samples, table.labels, table.quality, [])
        return RecordEvaluation(rec.name, conf, len(truth), **_marked(table.quality),
                                calibration=(table.probabilities[keep], idx), episodes=episodes)
    intervals = excluded_intervals(rec.annotations, rec.signal.shape[1])
    inside = outside(ref_pos, intervals)
    ref_pos, ref_cls = ref_pos[inside], [c for c, k in zip(ref_cls, inside, strict=True) if k]
    try:
        table = classifier.classify(rec.signal, rec.fs, None, rec.model_leads, rec.name)
    except InputError as exc:
        return _counted_unclassified(conf, rec.name, ref_cls, str(exc))
    det_keep = outside(table.samples, intervals)
    det_pos = table.samples[det_keep]
    det_labels = [v for v, k in zip(table.labels, det_keep, strict=True) if k]
    det_probs = table.probabilities[det_keep]
    m = match(ref_pos, det_pos, rec.fs)
    for i, j in m.pairs:
        conf.add(ref_cls[i], det_labels[j])
    for i in m.missed:
        conf.add(ref_cls[i], UNCLASSIFIED)
    for j in m.extra:
        conf.add(EXTRA, det_labels[j])
    truth = [ref_cls[i] for i, _ in m.pairs]
    keep, idx = _truth_index(labels, truth)
    probs = det_probs[m.pairs[:, 1]][keep] if len(m.pairs) else np.zeros((0, len(labels)))
    excluded = sum(min(hi, rec.signal.shape[1]) - lo for lo, hi in intervals) / rec.fs
    quality = [q for q, k in zip(table.quality, det_keep, strict=True) if k]
    episodes = _episodes(rec, ref_pos, ref_cls, det_pos, det_labels, quality, intervals)
    return RecordEvaluation(rec.name, conf, len(ref_cls), {"tp": m.tp, "fn": m.fn, "fp": m.fp}, excluded,
                            **_marked(quality), calibration=(probs, idx), episodes=episodes)


def _episodes(rec, ref_pos: np.ndarray, ref_cls: list[str], det_pos: np.ndarray, det_labels: list[str],
              det_quality: list[tuple[str, ...]],
              intervals: list[tuple[int, int]]) -> dict[str, EpisodeCounts]:
    """Runs and AF of the reference (beat classes, rhythm annotations) against those of the classified beats."""
    order = np.argsort(ref_pos, kind="stable")
    reference = runs(ref_pos[order], [ref_cls[i] for i in order])
    ann = rec.annotations
    reference += [e for e in reference_af(ann.sample, ann.aux, rec.signal.shape[1])
                  if outside(np.array([e.start]), intervals)[0]]
    return compare(reference, detected_episodes(det_pos, det_labels, rec.fs, det_quality), rec.fs)


def _counted_unclassified(conf: Confusion, name: str, classes: list[str], reason: str) -> RecordEvaluation:
    for c in classes:
        conf.add(c, UNCLASSIFIED)
    return RecordEvaluation(name, conf, len(classes), error=reason)


def _unreadable(conf: Confusion, name: str, path, reason: str) -> RecordEvaluation:
    """A record whose signal cannot be read: its annotated beats, if the annotations can be read, all count as
    unclassified; otherwise the error stands alone."""
    from edgemed.core.readers import wfdb

    try:
        _, classes = reference_beats(wfdb.read_annotations(path))
    except EdgemedError:
        raise InputError(f"record {name}: {reason}; its annotations cannot be read either") from None
    return _counted_unclassified(conf, name, classes, reason)


def _marked(quality: list[tuple[str, ...]]) -> dict[str, int]:
    """How many beats carry the quality marks a record's row reports."""
    return {"edge_beats": sum(EDGE in q for q in quality), "flat_beats": sum(FLAT_STRETCH in q for q in quality)}


def evaluate(model: EdgeModel, data, records: list[str] | None = None, beats: str = "reference",
             progress: Callable[[str], None] | None = None, lead_map: LeadMap | None = None) -> Evaluation:
    """Evaluate `model` on a WFDB folder (or the `records` of it) or one record; `lead_map`: which of the records'
    leads stands for a model lead named otherwise."""
    if beats not in BEAT_SOURCES:
        raise InputError(f"beats must be one of {BEAT_SOURCES}, not {beats!r}")
    check_lead_map(lead_map, model.spec)
    classifier = BeatClassifier(model)
    results = []
    for path in list_recordings(data, records):
        if progress is not None:
            progress(path.name)
        results.append(evaluate_record(classifier, path, beats, lead_map))
    folder = Path(data).resolve() if Path(data).is_dir() else None
    return Evaluation(model.path.name, model.sha256, model.labels, beats, results,
                      model.spec.calibration.abstain_below, folder)
