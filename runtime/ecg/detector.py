"""Beat detection: the two QRS detectors of `qrs` (first lead, all leads) combined into beats in time order, each
placed on its R peak; whole records (`detect_beats`) and streams (`BeatDetector.push`/`flush`) give the same
beats.

Placing a beat (`place_r`): in the first lead, over the 250 ms before the integrated peak, the QRS is the
steepest 20 ms stretch (largest summed absolute slope) and the stretches joined to it whose slope stays at least
half of it; the R peak is the largest deviation from the window's median within 20 ms of that complex. A P or T
wave is a separate slope, with a flat stretch between it and the QRS. The largest deviation over the whole window
lands on a tall P or T wave where the QRS is small (MIT-BIH 108, 203): 200 ms off, a missed beat and a false one
under EC57's 150 ms rule; the steepest stretch alone lands off a wide ventricular beat's main peak, where reference
annotations and training windows sit. Measured on DS1 (`python benchmarks/qrs.py`, and `edgemed evaluate
--beats detect` with round 3's MIT-BIH int8 model; Se / +P %): detection errors 170 -> 142, V 93.5 / 85.1 -> 93.6 /
87.2, F 97.6 / 61.8 -> 94.0 / 62.8, V couplets 84.5 / 79.2 -> 83.7 / 83.5. Also measured: the steepest stretch
alone (142 errors, V 92.2 / 87.0, couplets 77.9 / 81.2), the largest deviation within 40 ms of any stretch at least
0.2 to 0.4 of the steepest (158 to 164 errors), joined stretches at 0.3 or within 40 ms (142 to 148 errors).
"""

from __future__ import annotations

import numpy as np

from edgemed.core.errors import InputError
from edgemed.runtime.ecg.qrs import INTEGRATION_S, LEARNING_S, T_WAVE_S, QRSDetector, as_leads, check_finite
from edgemed.runtime.ecg.slope import FLAT

LOCATE_BEFORE_S = INTEGRATION_S + 0.1  # where the R peak lies before the integrated peak
STEEP_S = 0.02  # stretches of this length, by their summed absolute slope
QRS_SHARE = 0.5  # the QRS: the steepest stretch and those joined to it at least this share as steep
REACH_S = 0.02  # the R peak lies within this of the QRS
# A beat only the other leads show is kept where the first lead's beats around it are this many local RR intervals
# apart: a missed beat leaves a gap of about two intervals (1.6 or more after a premature beat). On DS1 it removes
# 37 of the 102 false detections for 11 of the 94 missed beats (1.2 to 1.5 measure alike; 2.0 loses more).
GAP_RR = 1.5
HISTORY = 9  # primary beats kept for the local RR
# A longer push is detected in chunks of this length: the filters' block products and running averages hold about
# twenty copies of what they are given (an hour of two leads at 360 Hz: 400 MB at once).
CHUNK_S = 60.0


class BeatDetector:
    """Beats of a multi-lead ECG, chunk by chunk, in time order, each on its R peak (see the module's docstring).
    `push` and `flush` return sample positions counted from the first sample pushed."""

    def __init__(self, fs: float, leads: int = 1) -> None:
        self.fs, self.leads = fs, leads
        self.primary = QRSDetector(fs, leads=1)
        self.combined = QRSDetector(fs, leads=leads) if leads > 1 else None
        self.gap = int(round(T_WAVE_S * fs))
        self.warmup = int(round(LEARNING_S * fs))  # the combined detector's lead scaling settles first
        self._kept = np.zeros((leads, 0))  # every lead's last seconds, where new beats are placed
        self._kept_base = 0
        self._r: dict[int, int] = {}  # each undecided beat's R peak, placed as soon as a QRS detector finds it
        self._primary: list[int] = []
        self._others: list[int] = []
        self._emitted = -1

    def push(self, x: np.ndarray) -> list[int]:
        x = as_leads(x)
        if x.shape[0] != self.leads:
            raise InputError(f"the detector was set up for {self.leads} lead(s); got an array of shape {x.shape}")
        step = max(1, int(CHUNK_S * self.fs))
        if x.shape[1] > step:  # a whole recording: in chunks, as a stream (the same beats), in bounded memory
            check_finite(x)  # before any chunk changes the detectors' state
            return [b for i in range(0, x.shape[1], step) for b in self.push(x[:, i : i + step])]
        self._kept = np.concatenate([self._kept, x], axis=1)
        self._primary += self._place(self.primary.push(x[:1]))
        if self.combined is not None:
            self._others += self._place(self.combined.push(x), skip_near_primary=True)
        out = self._emit(final=False)
        keep = int(8 * self.fs)
        if self._kept.shape[1] > keep:
            self._kept_base += self._kept.shape[1] - keep
            self._kept = self._kept[:, -keep:]
        return out

    def last_decided(self) -> tuple[int, int] | None:
        """(the last beat either QRS detector has decided, emitted here or not yet; the sample up to which every
        beat is decided), None before the first beat. A beat is emitted once the next one is known, about one RR
        interval late: a monitor's asystole test reads this instead."""
        latest = max([*self._primary, *self._others, self._emitted])
        return None if latest < 0 else (latest, max(self.primary.decided_until, latest))

    def flush(self) -> list[int]:
        self._primary += self._place(self.primary.flush())
        if self.combined is not None:
            self._others += self._place(self.combined.flush(), skip_near_primary=True)
        return self._emit(final=True)

    def _place(self, found: list[int], skip_near_primary: bool = False) -> list[int]:
        """Place new beats on their R peaks now, while the signal kept still holds the samples before them (a
        search-back beat is at most a few seconds old); the last beat may wait for the next one for hours (a lead
        off), and the signal kept does not wait with it. The other leads' beats that lie near one of the
        first lead's are never emitted and are not placed (half the placing time)."""
        near = np.array(self._primary, dtype=np.int64) if skip_near_primary else np.zeros(0, dtype=np.int64)
        new = [c for c in found if c not in self._r and not (len(near) and np.abs(near - c).min() <= self.gap)]
        located = place_r(self._kept, np.array(new, dtype=np.int64) - self._kept_base, self.fs)
        self._r.update({c: int(r) + self._kept_base for c, r in zip(new, located, strict=True)})
        return found

    def _emit(self, final: bool) -> list[int]:
        primary = np.array(sorted(set(self._primary)), dtype=np.int64)
        horizon = np.inf if final else (primary[-1] - self.gap if len(primary) else -np.inf)
        if not final:
            horizon = max(horizon, self._silent_until(primary))
        extra = [c for c in self._others if self.warmup <= c < horizon
                 and (not len(primary) or np.abs(primary - c).min() > self.gap) and self._in_a_gap(primary, c)]
        ready = sorted({int(p) for p in primary if p < horizon} | set(extra))
        ready = [p for p in ready if p > self._emitted]
        self._others = [c for c in self._others if c >= horizon]
        before = [p for p in primary if p < horizon - 2 * self.gap][-HISTORY:]
        self._primary = [int(p) for p in before] + [p for p in self._primary if p >= horizon - 2 * self.gap]
        if ready:
            self._emitted = ready[-1]
        # a beat left unplaced lay near a first-lead beat, which stays, so it is not emitted; placed here should
        # that reasoning ever fail, rather than lost
        missing = [p for p in ready if p not in self._r]
        if missing:
            self._place(missing)
        out = [self._r[p] for p in ready]
        self._r = {c: r for c, r in self._r.items() if c > self._emitted}
        return out

    def _silent_until(self, primary: np.ndarray) -> float:
        """Where the first lead has been silent for longer than a missed beat explains (a lead off, a flat lead),
        the beats the other leads found are decided up to where both detectors' beats are final: none of the first
        lead's can still come near them, and they lie in a gap whatever comes next. Without this a stream held every
        beat until the first lead's next one (a minute of leads off: a minute without beats, then all at once)."""
        detectors = [self.primary] if self.combined is None else [self.primary, self.combined]
        settled = min(d.decided_until - d.search_span - d.refractory for d in detectors)
        if len(primary) >= 3:
            rr = np.diff(primary[-HISTORY:])
            if settled - primary[-1] <= GAP_RR * float(np.median(rr)):
                return -np.inf
        return float(settled - self.gap)

    def _in_a_gap(self, primary: np.ndarray, c: int) -> bool:
        """A beat only the combined detector found is kept where the first lead's beats around it leave a gap
        longer than GAP_RR local RR intervals (a beat is missing there), or where there is no local RR yet."""
        i = int(np.searchsorted(primary, c))
        if i < 3 or i == len(primary):
            return True
        rr = np.diff(primary[max(0, i - HISTORY):i])
        return bool(primary[i] - primary[i - 1] > GAP_RR * float(np.median(rr)))


def place_r(signal: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray:
    """The R peak of each beat from its integrated peak (see the module's docstring), in the first lead of
    `signal` ([leads, samples] or one lead) that is not flat over the beat's window: a beat that only the other
    leads show while the first is off is placed on theirs (on the flat first lead it landed at the window's start,
    up to 250 ms early)."""
    leads = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    n = leads.shape[1]
    before, reach = int(round(LOCATE_BEFORE_S * fs)), int(round(REACH_S * fs))
    stretch = np.ones(max(1, int(round(STEEP_S * fs))))
    out = np.empty(len(peaks), dtype=np.int64)
    for k, p in enumerate(np.asarray(peaks, dtype=np.int64)):
        lo, hi = max(int(p) - before, 0), min(int(p) + 1, n)
        if hi - lo < 3:
            out[k] = min(max(int(p), 0), n - 1)
            continue
        seg = next((x[lo:hi] for x in leads if np.ptp(x[lo:hi]) > FLAT * np.abs(x[lo:hi]).max()), leads[0, lo:hi])
        slope = np.convolve(np.abs(np.gradient(seg)), stretch, mode="same")
        a, b = _complex(slope >= QRS_SHARE * slope.max(), int(np.argmax(slope)))
        a, b = max(a - reach, 0), min(b + reach + 1, len(seg))
        out[k] = lo + a + int(np.argmax(np.abs(seg[a:b] - np.median(seg))))
    return out


def _complex(steep: np.ndarray, centre: int) -> tuple[int, int]:
    """The first and last index of the run of True in `steep` that holds `centre`."""
    flat = np.flatnonzero(~steep)
    before, after = flat[flat < centre], flat[flat > centre]
    return (int(before[-1]) + 1 if len(before) else 0), (int(after[0]) - 1 if len(after) else len(steep) - 1)


def detect_beats(signal: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample positions of the beats in ECG [leads, samples] or [samples], the whole record at once."""
    x = as_leads(signal)
    det = BeatDetector(fs, leads=x.shape[0])
    if not x.shape[1]:
        return np.zeros(0, dtype=np.int64)
    return np.array(det.push(x) + det.flush(), dtype=np.int64)
