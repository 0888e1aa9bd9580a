"""Rhythm episodes from classified beats: ventricular and supraventricular couplets and runs, and atrial
fibrillation suspected from the irregularity of the RR intervals (numpy only, causal, the same for a whole record
and for a stream).

- **Runs** (EC57's run-by-run terms): consecutive beats of one ectopic class; two make a couplet, three or more a
  run (`short` up to five beats, `long` from six). An uncertain or other beat ends a run.
- **Atrial fibrillation** (after Petrenas, Marozas and Sornmo 2015, low-complexity and causal): over the last
  `AF_WINDOW` RR intervals, the median absolute successive difference relative to the median RR (lag 1), and the
  same over intervals two apart (lag 2: bigeminy alternates regularly, so its lag-2 differences stay small, AF's
  do not). Intervals next to a beat classified V or S are left out (ectopic beats are not irregular rhythm: a
  patient with frequent premature beats is not in AF, while in AF most beats stay classified N), and so are those
  next to an uncertain beat (abstained, or found in another lead while the model's lead was flat). AF is
  suspected while both exceed `AF_THRESHOLD`; episodes closer than `AF_MERGE_S` are merged and shorter than
  `AF_MIN_S` dropped.

Reference episodes come from the annotations: runs from the reference beat classes, AF from the rhythm
annotations (`(AFIB` until the next rhythm change).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edgemed.runtime.ecg.flat import FLAT_STRETCH
from edgemed.runtime.model.plausibility import FLAT
from edgemed.runtime.model.prediction import UNCERTAIN

RUN_CLASSES = ("V", "S")
ECTOPIC = ("V", "S")  # intervals next to an ectopic beat are not the rhythm's own
NOT_RHYTHM = (*ECTOPIC, UNCERTAIN)  # nor those next to a beat with no class
AF_WINDOW = 16  # RR intervals
AF_THRESHOLD = 0.12  # relative median successive difference, lag 1 and lag 2
AF_MERGE_S = 10.0
AF_MIN_S = 15.0
AF_RHYTHMS = ("(AFIB",)


@dataclass(frozen=True)
class Episode:
    kind: str  # "V couplet", "V run", "S couplet", "S run", "AF"
    start: int  # sample of its first beat (AF: of the first beat of its window)
    end: int  # sample of its last beat
    beats: int

    def to_dict(self, fs: float) -> dict:
        return {"kind": self.kind, "start_s": round(self.start / fs, 3), "end_s": round(self.end / fs, 3),
                "beats": self.beats, "length": run_length(self.beats) if self.kind != "AF" else "episode"}


def run_length(beats: int) -> str:
    return "couplet" if beats == 2 else "short" if beats <= 5 else "long"


def runs(samples: np.ndarray, labels: list[str], classes: tuple[str, ...] = RUN_CLASSES) -> list[Episode]:
    """Couplets (2 beats) and runs (3 or more) of consecutive beats of each class in `classes`."""
    out, k, n = [], 0, len(labels)
    while k < n:
        j = k
        while j + 1 < n and labels[j + 1] == labels[k]:
            j += 1
        if labels[k] in classes and j > k:
            count = j - k + 1
            out.append(Episode(f"{labels[k]} {'couplet' if count == 2 else 'run'}", int(samples[k]),
                               int(samples[j]), count))
        k = j + 1
    return out


class AFTracker:
    """AF suspicion beat by beat: feed each classified beat in time order; `state` says whether the last window
    looks like AF."""

    def __init__(self, fs: float, window: int = AF_WINDOW, threshold: float | None = None) -> None:
        self.fs, self.threshold = fs, AF_THRESHOLD if threshold is None else threshold
        self._rr: deque[float] = deque(maxlen=window + 2)
        self._last: tuple[int, str] | None = None
        self.irregularity = 0.0

    def push(self, sample: int, label: str) -> bool:
        """Whether AF is suspected after this beat."""
        if self._last is not None:
            previous_sample, previous_label = self._last
            if label not in NOT_RHYTHM and previous_label not in NOT_RHYTHM:
                self._rr.append((sample - previous_sample) / self.fs)
        self._last = (sample, label)
        if len(self._rr) < self._rr.maxlen:
            return False
        rr = np.fromiter(self._rr, float)
        level = float(np.median(rr))
        lag1 = float(np.median(np.abs(np.diff(rr)))) / level
        lag2 = float(np.median(np.abs(rr[2:] - rr[:-2]))) / level
        self.irregularity = min(lag1, lag2)
        return self.irregularity > self.threshold

    @property
    def ready(self) -> bool:
        """Whether a full window of RR intervals lies behind the last decision (before it, `push` says no AF)."""
        return len(self._rr) == self._rr.maxlen

    @property
    def window_s(self) -> float:
        """Seconds of rhythm the last decision looked at."""
        return float(sum(self._rr))


def af_episodes(samples: np.ndarray, labels: list[str], fs: float) -> list[Episode]:
    """AF episodes suspected from a record's classified beats (see the module's docstring)."""
    tracker = AFTracker(fs)
    spans: list[list[int]] = []
    for s, label in zip(samples, labels, strict=True):
        if tracker.push(int(s), label):
            start = int(s - tracker.window_s * fs)
            if spans and start - spans[-1][1] <= AF_MERGE_S * fs:
                spans[-1][1] = int(s)
            else:
                spans.append([max(start, 0), int(s)])
    episodes = []
    for start, end in spans:
        if (end - start) / fs >= AF_MIN_S:
            inside = int(np.count_nonzero((samples >= start) & (samples <= end)))
            episodes.append(Episode("AF", start, end, inside))
    return episodes


class AFRelabel:
    """Premature atrial beats cannot be told in atrial fibrillation (no P waves, an irregular rhythm: MIT-BIH's
    annotators label those beats N): while the rhythm is irregular (`AFTracker`, fed beat by beat, causally) a beat
    classified S is given N. Measured on DS1's patient-wise cross-validation: S +P 31 to 40 % at the same Se (the
    false S beats sat in the AF records). The model's probabilities are kept as they were."""

    def __init__(self, fs: float, labels: tuple[str, ...]) -> None:
        self.active = "S" in labels and "N" in labels
        self.tracker = AFTracker(fs)

    def apply(self, samples: np.ndarray, labels: list[str]) -> tuple[list[str], int]:
        """The labels after the rule, and how many changed."""
        if not self.active:
            return labels, 0
        out, changed = [], 0
        for s, label in zip(samples, labels, strict=True):
            irregular = self.tracker.push(int(s), label)
            if irregular and label == "S":
                out.append("N")
                changed += 1
            else:
                out.append(label)
        return out, changed


def rhythm_label(label: str, quality: tuple[str, ...]) -> str:
    """A beat's class for runs, AF and alarms: none (uncertain) where its model lead was flat (quality `flat_line`:
    a lead off; the beat itself came from another lead) or its window reaches into a flat stretch (`flat_stretch`:
    a lead coming off, the filters ringing at the step), as its label then means nothing."""
    return UNCERTAIN if FLAT in quality or FLAT_STRETCH in quality else label


def detected_episodes(samples: np.ndarray, labels: list[str], fs: float,
                      quality: list[tuple[str, ...]] | None = None) -> list[Episode]:
    """Runs and AF episodes of one recording's classified beats, in time order. A beat without a class
    (`rhythm_label`) breaks a run rather than make one (a minute of MLII off once made three S runs and a V run)."""
    if quality is not None:
        labels = [rhythm_label(label, q) for label, q in zip(labels, quality, strict=True)]
    return sorted(runs(samples, labels) + af_episodes(samples, labels, fs), key=lambda e: (e.start, e.kind))


def reference_af(samples: np.ndarray, aux: list[str], n_samples: int) -> list[Episode]:
    """AF episodes of the rhythm annotations: from each `(AFIB` to the next rhythm change (or the end)."""
    out, start = [], None
    for s, note in zip(samples, aux, strict=True):
        note = note.rstrip("\x00")
        if not note.startswith("("):
            continue
        if start is not None:
            out.append(Episode("AF", start, int(s), 0))
            start = None
        if note in AF_RHYTHMS:
            start = int(s)
    if start is not None:
        out.append(Episode("AF", start, n_samples, 0))
    return out
