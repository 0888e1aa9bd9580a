"""QRS detection on raw ECG, in numpy alone, chunk by chunk (Pan and Tompkins 1985; Hamilton and Tompkins 1986).

Two detectors run side by side, each all causal so that a stream and a whole record give the same beats: a
*primary* one on the first lead, and a *combined* one on all leads, whose squared slopes are each divided by their
own running scale (an 8 s average over the samples that carry a slope: `edgemed.runtime.ecg.slope`) before they
are averaged, so that a beat small in the first lead (an aberrant beat in MLII) still shows. Each: band-pass 5-15
Hz (second-order Butterworth sections), five-point derivative, squaring, moving-window integration over 150 ms.
Candidate peaks of the integrated signal are decided in order:

1. a peak within 200 ms of a larger one is ignored (refractory period);
2. a peak whose band-passed signal does not rise and fall in any lead (a baseline step) is noise;
3. a peak within 360 ms of the previous beat with under half its maximum slope (the combined squared slope) is a
   T wave;
4. a peak above the threshold `noise + 0.25 * (signal - noise)` is a beat, else noise; signal and noise levels are
   running averages of the peaks so classified (the first two seconds set them);
5. search-back: when no beat came within 1.4 times the mean of the last eight RR intervals (1 s until two are
   known, and from the start before the first beat), the largest noise peak since the last beat (at least 360 ms
   after it, at most 3 s before the candidate that triggers it) above half the threshold is taken as a beat (a
   first beat several times the rest once left it deaf, waiting for two intervals that never came);
6. artifacts: one peak moves the signal level at most to `LEVEL_CAP` times itself (the noise level at most to the
   signal level), and a spike's slope enters the running scale clipped (`edgemed.runtime.ecg.slope`), so a spike
   does not leave the detector deaf; after a signal shrinks (a gain drop) a fast scale takes over from the slow one.
7. a start gone wrong: fewer than two beats 3 s after the levels were learned, they are learned again from the last
   two seconds (a 20 mV spike as a recording began once set them so high that no beat of the record reached them).

The beats are the primary detector's, plus the combined detector's that lie more than 360 ms (the T-wave window)
from every primary beat, after the first two seconds (while the combined detector's lead scaling settles), and in a
gap between primary beats longer than 1.5 times the median of their last eight RR intervals (where a beat is
missing; a noise peak in another lead inside a normal interval is not a beat). Each is
placed on the R peak in the first lead: the largest deviation near the steepest stretch of the window before the
integrated peak (`edgemed.runtime.ecg.detector.place_r`).

Latency: a candidate is decided once 200 ms of signal after it have arrived; a beat is final once the primary
detector has accepted a beat more than 360 ms after it (nothing earlier can change after that), so beats are
reported in time order about one RR interval plus 0.6 s after their R peak, and at the end of a recording by
`flush`. On MIT-BIH (DS1, 22 records, EC57 rule) the detector finds 99.82 % of the beats with 99.91 % of its
detections true (benchmarks/qrs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgemed.core.errors import InputError
from edgemed.runtime.ecg.slope import SlopeSignal
from edgemed.runtime.model.validate import positive_rate

REFRACTORY_S = 0.2
T_WAVE_S = 0.36
INTEGRATION_S = 0.15
SEARCH_BACK_RR = 1.4
SEARCH_BACK_FRACTION = 0.5  # a search-back beat's peak is above this share of the threshold
RELEARN_S = 3.0  # rule 7: fewer than two beats this long after the levels were learned: learn them again
FIRST_RR_S = 1.0  # the RR interval search-back assumes until two are known (and before the first beat)
SEARCH_BACK_S = 3.0  # nor older than this: the history kept (4 s) must still hold it, however the signal is chunked
LEARNING_S = 2.0
THRESHOLD_FRACTION = 0.25
MIN_RATE_HZ = 50.0
LEVEL_CAP = 3.0  # one peak moves the signal level at most to this times itself (see `edgemed.runtime.ecg.slope`)


@dataclass
class _Levels:
    signal: float
    noise: float

    @classmethod
    def learn(cls, head: np.ndarray) -> _Levels:
        """Levels from the first seconds' integrated signal (rule 4), or the last ones (rule 7)."""
        return cls(signal=0.5 * float(head.max()), noise=0.5 * float(head.mean()))

    @property
    def threshold(self) -> float:
        return self.noise + THRESHOLD_FRACTION * (self.signal - self.noise)

    def beat(self, peak: float, weight: float = 0.125) -> None:
        capped = min(peak, LEVEL_CAP * self.signal) if self.signal > 0 else peak  # none yet: a flat lead-in
        self.signal = weight * capped + (1 - weight) * self.signal

    def noise_peak(self, peak: float) -> None:
        capped = min(peak, self.signal) if self.signal > 0 else peak
        self.noise = 0.125 * capped + 0.875 * self.noise


@dataclass
class QRSDetector:
    """Feed chunks of ECG ([leads, samples], or one lead [samples]) with `push`; it returns the sample positions
    (counted from the first sample ever pushed) of the beats it has decided. `flush` decides what remains at the
    end of a recording."""

    fs: float
    leads: int = 1
    _n: int = 0  # samples consumed
    _pending: list[tuple[int, float]] = field(default_factory=list, repr=False)  # candidates awaiting look-ahead
    # decided candidates a later one may still lose to under rule 1 (chunk by chunk as in one piece)
    _decided: list[tuple[int, float]] = field(default_factory=list, repr=False)
    _noise_since_beat: list[tuple[int, float]] = field(default_factory=list, repr=False)
    _levels: _Levels | None = None
    _beats: list[int] = field(default_factory=list, repr=False)
    _last_slope: float = 0.0
    _rr: list[int] = field(default_factory=list, repr=False)
    _base: int = 0
    _next_candidate: int = 1  # first index not yet scanned for local maxima
    _learned_at: int = 0  # where the levels were last learned (rule 7)
    _slope_ratio = 0.5  # rule 3: a T wave has under this share of the previous beat's slope

    def __post_init__(self) -> None:
        self.fs = positive_rate(self.fs, "the ECG's sampling rate")
        if self.fs < MIN_RATE_HZ:
            raise InputError(f"QRS detection needs at least {MIN_RATE_HZ:g} Hz; the signal is sampled at {self.fs} Hz")
        self.window = max(1, int(round(INTEGRATION_S * self.fs)))
        self._chain = SlopeSignal(self.fs, self.leads, self.window)
        self.refractory = int(round(REFRACTORY_S * self.fs))
        self.t_wave = int(round(T_WAVE_S * self.fs))
        self.search_span = int(round(SEARCH_BACK_S * self.fs))
        self._bp = np.zeros((self.leads, 0))
        self._sq = np.zeros(0)
        self._mwi = np.zeros(0)

    def push(self, x: np.ndarray) -> list[int]:
        """Process a chunk; returns the beats decided so far that were not returned before."""
        x = as_leads(x)
        if x.shape[0] != self.leads:
            raise InputError(f"the detector was set up for {self.leads} lead(s); got an array of shape {x.shape}")
        if not x.shape[1]:
            return []
        check_finite(x)
        bp, sq, mwi = self._chain.push(x)
        self._bp = np.concatenate([self._bp, bp], axis=1)
        self._sq = np.concatenate([self._sq, sq])
        self._mwi = np.concatenate([self._mwi, mwi])
        self._n += x.shape[1]
        return self._decide(final=False)

    @property
    def decided_until(self) -> int:
        """Every beat before this sample has been decided (returned by `push`), search-back aside."""
        return self._n - self.refractory

    def flush(self) -> list[int]:
        """Decide the remaining candidates at the end of the signal."""
        return self._decide(final=True)

    # -- decisions ----------------------------------------------------------------------------------------------

    def _scan(self, final: bool) -> None:
        """Add local maxima of the integrated signal to the pending list."""
        end = self._base + len(self._mwi) - (0 if final else 1)
        m, base = self._mwi, self._base
        lo, hi = self._next_candidate - base, end - base
        if hi - lo < 1:
            return
        seg = m[max(lo - 1, 0) : hi + 1]
        off = max(lo - 1, 0)
        interior = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])) + 1 + off
        for i in interior:
            if lo <= i < hi:
                self._pending.append((int(i) + base, float(m[i])))
        self._next_candidate = end

    def _slope(self, at: int) -> tuple[float, bool]:
        """The largest combined squared slope in the integration window before `at`, and whether some lead's
        band-passed signal both rose and fell there (a QRS does; a baseline step does not)."""
        lo = max(at - self.window - self._base, 0)
        hi = at - self._base + 1
        if hi - lo < 3:
            return 0.0, False
        d = np.diff(self._bp[:, lo:hi], axis=1)
        both = bool(((d.max(axis=1) > 0) & (d.min(axis=1) < 0)).any())
        return float(np.sqrt(self._sq[lo:hi].max())), both

    def _decide(self, final: bool) -> list[int]:
        if self._levels is None:
            learn = int(LEARNING_S * self.fs)
            if self._n < learn and not final:
                return []
            self._levels, self._learned_at = _Levels.learn(self._mwi[: max(learn, 1)]), learn
        self._scan(final)
        horizon = self._base + len(self._mwi) if final else self._n - self.refractory
        out = []
        before = len(self._decided)  # candidates decided in earlier chunks, still within rule 1's reach
        pending = self._decided + sorted(self._pending)
        idx = np.array([i for i, _ in pending], dtype=np.int64)
        heights = np.array([h for _, h in pending])
        lo = np.searchsorted(idx, idx - self.refractory, side="left")
        hi = np.searchsorted(idx, idx + self.refractory, side="right")
        decided = before
        for k in range(before, len(pending)):
            i, h = pending[k]
            if i > horizon:
                break
            decided = k + 1
            if heights[lo[k] : hi[k]].max() > h:
                continue  # rule 1: a larger peak within the refractory period wins
            out += self._classify(i, h)
        self._pending = pending[decided:]
        self._decided = [c for c in pending[:decided] if c[0] > horizon - self.refractory]
        if final:
            out += self._search_back(self._base + len(self._mwi))
        self._trim()
        return sorted(out)

    def _classify(self, i: int, h: float) -> list[int]:
        if len(self._beats) < 2 and i - self._learned_at >= RELEARN_S * self.fs:
            self._relearn(i)
        found = self._search_back(i)  # decided at candidate times only, so chunking cannot change the result
        return found + self._rules(i, h)

    def _rules(self, i: int, h: float) -> list[int]:
        levels = self._levels
        slope, both = self._slope(i)
        last = self._beats[-1] if self._beats else None
        if last is not None and i - last < self.refractory:
            return []
        if not both:
            levels.noise_peak(h)
            return []
        if last is not None and i - last < self.t_wave and slope < self._slope_ratio * self._last_slope:
            levels.noise_peak(h)  # rule 3: a T wave
            return []
        if h > levels.threshold:
            levels.beat(h)
            return self._accept(i, slope)
        levels.noise_peak(h)
        self._noise_since_beat.append((i, h))
        return []

    def _accept(self, i: int, slope: float) -> list[int]:
        if self._beats:
            self._rr = (self._rr + [i - self._beats[-1]])[-8:]
        self._beats.append(i)
        self._last_slope = slope
        self._noise_since_beat = []
        return [i]

    def _relearn(self, i: int) -> None:
        """Rule 7: learn the levels again from the last LEARNING_S before `i` (the history a stream keeps holds
        them)."""
        head = self._mwi[max(i - int(LEARNING_S * self.fs) - self._base, 0) : i - self._base + 1]
        self._levels, self._learned_at = _Levels.learn(head), i

    def _search_back(self, now: int) -> list[int]:
        """Rule 5: no beat for too long, so the largest noise peak above half the threshold was one (repeated while
        the gap stays too long)."""
        found = []
        while True:
            last = self._beats[-1] if self._beats else 0
            rr = np.mean(self._rr) if len(self._rr) >= 2 else FIRST_RR_S * self.fs
            if now - last <= SEARCH_BACK_RR * rr:
                break
            eligible = [(h, i) for i, h in self._noise_since_beat
                        if self.t_wave <= i - last and now - self.search_span <= i < now]
            if not eligible:
                break
            h, i = max(eligible)
            if h <= SEARCH_BACK_FRACTION * self._levels.threshold:
                break
            self._levels.beat(h, weight=0.25)
            slope, _ = self._slope(i)
            self._rr = (self._rr + [i - last])[-8:] if self._beats else self._rr
            self._beats.append(i)
            self._last_slope = slope
            self._noise_since_beat = [(j, q) for j, q in self._noise_since_beat if j > i]
            found.append(i)
        return found

    def _trim(self) -> None:
        """Keep only the history decisions can still look at (the last 4 seconds). Noise peaks older than that
        are dropped with it: search-back could not measure their slope, and without the trim a flat line (a lead
        off for hours: no beats, one noise peak a second) grew the list and every later step without bound."""
        keep = int(4 * self.fs)
        drop = len(self._mwi) - keep
        if drop > 0 and self._levels is not None:
            self._bp, self._sq, self._mwi = self._bp[:, drop:], self._sq[drop:], self._mwi[drop:]
            self._base += drop
            self._noise_since_beat = [(i, h) for i, h in self._noise_since_beat if i - self.window >= self._base]
        self._beats = self._beats[-16:]


def check_finite(x: np.ndarray) -> None:
    """InputError unless every sample is a number (detection needs a gap-free signal)."""
    if not np.isfinite(x).all():
        raise InputError("the ECG holds NaN or Inf samples; QRS detection needs a gap-free signal")


def as_leads(signal: object) -> np.ndarray:
    """ECG as float64 [leads, samples] (one lead may come as [samples]); anything else is an InputError."""
    try:
        arr = np.asarray(signal) if not isinstance(signal, np.ndarray) else signal
    except (TypeError, ValueError, UnicodeError, OverflowError) as exc:  # ragged lists, undecodable bytes...
        raise InputError(f"the ECG must be a numeric array [leads, samples] or [samples] ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise InputError(f"the ECG must be a real numeric array, not {arr.dtype} values")
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[0] == 0):
        raise InputError(f"the ECG must be [leads, samples] or [samples] with at least one lead; got shape "
                         f"{arr.shape}")
    x = arr.astype(np.float64, copy=False)
    return x[None] if x.ndim == 1 else x
