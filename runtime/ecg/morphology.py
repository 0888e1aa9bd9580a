"""Morphology features of a beat relative to the patient's own beats, learnt without labels and causally (only
beats before it), so a stream and a whole record give the same values (numpy only).

What a cardiologist does first is learn this patient's normal beat. Against the template (the median of the
previous beats: `edgemed.runtime.ecg.context`) each beat gets, on its first lead:
- `qrs_corr`, `p_corr`: correlation with the template over the QRS (R +- 60 ms) and over the P-wave region
  (300 to 100 ms before R): a premature atrial beat keeps its QRS and loses its P wave; a ventricular one loses both;
- `qrs_energy`: its QRS spread over the template's; `qrs_width`: its QRS width (samples above half its largest
  deviation) over the template's; `residual`: the size of its difference from the template over the template's;
- `cluster_share`, `cluster_rr`: beats are clustered as they arrive (a beat joins the most similar cluster of QRS
  shapes when the correlation reaches `CLUSTER_CORR`, else starts one; at most `MAX_CLUSTERS`, the rarest replaced):
  the share of all beats so far in its cluster (the dominant morphology is the patient's normal), and the mean
  prematurity (pre_rr / local_rr) of that cluster's beats: a cluster of early beats with a normal shape marks
  supraventricular ectopy, a rare early cluster of another shape ventricular.

Every value is bounded (ratios to [0, 10], correlations to [-1, 1]); a flat segment reads as uncorrelated.
"""

from __future__ import annotations

import numpy as np

QRS_S = 0.06
P_FROM_S, P_TO_S = 0.30, 0.10
CLUSTER_CORR = 0.90
MAX_CLUSTERS = 8
EPS = 1e-6


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float(np.clip((a * b).sum() / den, -1.0, 1.0)) if den > EPS else 0.0


def _width(x: np.ndarray) -> float:
    dev = np.abs(x - np.median(x))
    peak = float(dev.max())
    return float(np.count_nonzero(dev > 0.5 * peak)) if peak > EPS else 0.0


def _ratio(a: float, b: float) -> float:
    return float(np.clip(a / b, 0.0, 10.0)) if b > EPS else 1.0


class MorphologyTracker:
    """Feed each beat's window (first lead) and template in time order; returns the features named in
    `edgemed.core.spec.MORPHOLOGY_FEATURES`."""

    def __init__(self, fs: float, r_index: int) -> None:
        q = max(1, int(round(QRS_S * fs)))
        self.qrs = slice(max(r_index - q, 0), r_index + q + 1)
        self.p = slice(max(r_index - int(round(P_FROM_S * fs)), 0), max(r_index - int(round(P_TO_S * fs)), 1))
        self._shapes: list[np.ndarray] = []
        self._counts: list[int] = []
        self._prematurity: list[float] = []
        self._total = 0

    def features(self, window: np.ndarray, template: np.ndarray | None, prematurity: float) -> dict[str, float]:
        beat = np.asarray(window, np.float64)
        ref = beat if template is None else np.asarray(template, np.float64)
        bq, rq = beat[self.qrs], ref[self.qrs]
        out = {"qrs_corr": _corr(bq, rq), "p_corr": _corr(beat[self.p], ref[self.p]),
               "qrs_energy": _ratio(float(bq.std()), float(rq.std())), "qrs_width": _ratio(_width(bq), _width(rq)),
               "residual": _ratio(float(np.linalg.norm(bq - rq)), float(np.linalg.norm(rq - rq.mean())))}
        k = self._cluster(bq)
        self._prematurity[k] += float(np.clip(prematurity, 0.0, 10.0))
        out["cluster_share"] = self._counts[k] / self._total
        out["cluster_rr"] = float(np.clip(self._prematurity[k] / self._counts[k], 0.0, 10.0))
        return out

    def _cluster(self, qrs: np.ndarray) -> int:
        """The beat's cluster (joined or new), with the beat counted in it."""
        shape = qrs - qrs.mean()
        norm = float(np.linalg.norm(shape))
        shape = shape / norm if norm > EPS else shape
        best, score = -1, -2.0
        for k, s in enumerate(self._shapes):
            c = float(shape @ s)
            if c > score:
                best, score = k, c
        self._total += 1
        if best >= 0 and score >= CLUSTER_CORR:
            n = self._counts[best]
            mean = self._shapes[best] * n + shape
            self._shapes[best] = mean / max(float(np.linalg.norm(mean)), EPS)
            self._counts[best] += 1
            return best
        if len(self._shapes) >= MAX_CLUSTERS:
            best = int(np.argmin(self._counts))
            self._shapes[best], self._counts[best], self._prematurity[best] = shape, 1, 0.0
            return best
        self._shapes.append(shape)
        self._counts.append(1)
        self._prematurity.append(0.0)
        return len(self._shapes) - 1
