"""Run-by-run and episode comparison with the reference, after ANSI/AAMI EC57 (numpy only).

- Runs (couplets; runs of three or more): a reference run counts as detected (for Se) when a detected run of the
  same class and kind overlaps it in time, and a detected run counts as true (for +P) when it overlaps a reference
  one of its class and kind; overlaps are judged with the beat-matching tolerance (150 ms) at both ends. Runs are
  reported by class (V, S) and kind (couplet, run), runs also by length (short 3-5 beats, long 6 or more).
- Atrial fibrillation: episode Se is the share of reference AF episodes that any detected AF overlaps, episode +P the
  share of detected AF episodes that overlap reference AF; duration Se is the share of the reference AF time
  covered by detected AF, duration +P the share of the detected AF time that is reference AF.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgemed.runtime.ecg.ec57 import WINDOW_S
from edgemed.runtime.ecg.episodes import Episode, run_length

AF = "AF"


def _overlaps(a: Episode, b: Episode, tolerance: int) -> bool:
    return a.start <= b.end + tolerance and b.start <= a.end + tolerance


@dataclass
class EpisodeCounts:
    reference: int = 0
    detected: int = 0
    reference_found: int = 0  # reference episodes overlapped by a detected one
    detected_true: int = 0  # detected episodes overlapping a reference one
    reference_s: float = 0.0  # AF only: durations
    detected_s: float = 0.0
    overlap_s: float = 0.0

    def __iadd__(self, other: EpisodeCounts) -> EpisodeCounts:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def to_dict(self) -> dict:
        out = {"reference": self.reference, "detected": self.detected, "se": _ratio(self.reference_found,
                                                                                      self.reference),
               "ppv": _ratio(self.detected_true, self.detected)}
        if self.reference_s or self.detected_s:
            out.update(reference_s=round(self.reference_s, 1), detected_s=round(self.detected_s, 1),
                       duration_se=_ratio(self.overlap_s, self.reference_s),
                       duration_ppv=_ratio(self.overlap_s, self.detected_s))
        return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _groups(episodes: list[Episode]) -> dict[str, list[Episode]]:
    out: dict[str, list[Episode]] = {}
    for e in episodes:
        out.setdefault(e.kind, []).append(e)
        if e.kind.endswith(" run"):
            out.setdefault(f"{e.kind} ({run_length(e.beats)})", []).append(e)
    return out


def compare(reference: list[Episode], detected: list[Episode], fs: float) -> dict[str, EpisodeCounts]:
    """Counts per kind ("V couplet", "V run", "V run (short)", ..., "AF") for one recording."""
    tolerance = int(round(WINDOW_S * fs))
    ref, det = _groups(reference), _groups(detected)
    out = {}
    for kind in sorted(set(ref) | set(det)):
        r, d = ref.get(kind, []), det.get(kind, [])
        counts = EpisodeCounts(len(r), len(d),
                               sum(any(_overlaps(a, b, tolerance) for b in d) for a in r),
                               sum(any(_overlaps(b, a, tolerance) for a in r) for b in d))
        if kind == AF:
            counts.reference_s = sum(e.end - e.start for e in r) / fs
            counts.detected_s = sum(e.end - e.start for e in d) / fs
            counts.overlap_s = sum(max(0, min(a.end, b.end) - max(a.start, b.start)) for a in r for b in d) / fs
        out[kind] = counts
    return out


def merge(per_record: list[dict[str, EpisodeCounts]]) -> dict[str, EpisodeCounts]:
    """Gross counts: every record's summed."""
    total: dict[str, EpisodeCounts] = {}
    for counts in per_record:
        for kind, c in counts.items():
            total.setdefault(kind, EpisodeCounts())
            total[kind] += c
    return total
