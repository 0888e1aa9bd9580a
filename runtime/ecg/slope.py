"""The signal a QRS detector reads (`edgemed.runtime.ecg.qrs`), chunk by chunk: each lead band-passed (5-15 Hz),
differentiated (five points), squared and divided by its own running scale, the leads averaged, then integrated over
a moving window. Every step is causal and keeps its state, so a stream and a whole record give the same signal.

The running scale is the mean squared slope of the last seconds (`SCALE_S`, an exponential average) over the samples
that carry a slope: their weight divides it (from the very first sample, 1 - decay**n), so a flat stretch (leads off)
neither counts nor dilutes it, and a signal after a flat lead-in is scaled as at the start of a stream.

Artifacts (an electrode pop, a defibrillator pulse, a burst of movement) must not leave the detector deaf. A spike of
50 mV once swelled a lead's scale a thousandfold: every beat of the next 75 s fell under the threshold (104 of 114
missed; a 200 ms burst: 84). So a sample's squared slope enters the scale at most `SLOPE_CLIP` times the square of
the lead's running mean absolute slope (which a spike moves little); the detector also caps how far one peak moves
its levels. SLOPE_CLIP measured on DS1 (detection errors with both leads): 50: 142, 70: 141, 100 to 200: 137, 300:
138; 150 sits mid-plateau.

A signal that shrinks (the gain dropped tenfold, an electrode losing contact, the end of a burst of noise that had
raised the scale) left the beats under the threshold for as long as the 8 s scale took to settle: 38 to 46 beats lost
in synthetic records, 751 in the DS1 artifact benchmark. A second, fast scale (`FAST_SCALE_S`, over the same clipped
slopes) takes over once `FAST_FACTOR` times it falls below the slow one, so only a drop in slope power of more than
that factor moves the scale sooner; the loss is now 12 to 16 synthetic beats (the fast scale's own settling), 259 in
the benchmark. Measured on DS1 (detection errors with both leads / beats missed after the gain drop / false beats in
an 8 s asystole of 50 uV noise, where fewer is safer): without it 137 / 751 / 17; factor 1: 142 / 179 / 37, 1.5: 141 /
212 / 31, 2 to 3: 136 / 231 to 286 / 19 to 21, 4: 137 / 378 / 19; a 1 s fast scale at factor 2: 140 / 120 / 54, 3 s:
137 / 355 / 19. Factor 2.5 at 2 s sits mid-plateau: a faster scale finds noise in an asystole sooner, which hides the
asystole (a patient-safety cost), so it was not taken for the gain drop's sake.
"""

from __future__ import annotations

import numpy as np

from edgemed.core.ema import ema
from edgemed.core.signal import butter_bandpass_sos, sosfilt, sosfilt_zi

SCALE_S = 8.0  # time constant of each lead's running scale
FAST_SCALE_S = 2.0  # ... and of the fast one, which takes over after the signal shrinks
FAST_FACTOR = 2.5
SLOPE_CLIP = 150.0
# A slope under this share of the sample's own value is the filter's rounding residue on a flat line (a lead off at
# some offset: about 1e-15 of it), which the scaling would otherwise raise to a QRS-sized signal and the detector's
# search-back take for beats (43 false beats in 30 s); no ADC resolves a real slope this small.
FLAT = 1e-9


class SlopeSignal:
    """`push(x)` with x [leads, samples] returns (band-passed x, the scaled squared slope averaged over the leads,
    its moving-window integral over `window` samples), each as long as the chunk."""

    def __init__(self, fs: float, leads: int, window: int) -> None:
        self.window = window
        self._sos = butter_bandpass_sos(2, 5.0, min(15.0, 0.45 * fs), fs)
        self._alpha, self._fast_alpha = 1.0 / (SCALE_S * fs), 1.0 / (FAST_SCALE_S * fs)
        self._zi: np.ndarray | None = None
        # the running averages' last values: [weight; mean |slope|], the mean squared slope, the fast [weight; mean]
        self._slow, self._mean, self._fast = np.zeros(2 * leads), np.zeros(leads), np.zeros(2 * leads)
        self._tail = np.zeros((leads, 4))
        self._sq_tail = np.zeros(window - 1)

    def push(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._zi is None:
            self._zi = np.outer(x[:, 0], sosfilt_zi(self._sos))
        bp, self._zi = sosfilt(self._sos, x, self._zi)
        ext = np.concatenate([self._tail, bp], axis=1)
        deriv = (2 * ext[:, 4:] + ext[:, 3:-1] - ext[:, 1:-3] - 2 * ext[:, :-4]) / 8.0
        deriv[np.abs(deriv) <= FLAT * np.abs(x)] = 0.0  # rounding residue of a flat line, not a slope
        self._tail = ext[:, -4:]
        sq = deriv**2
        carries = (deriv != 0).astype(float)
        slow, self._slow = ema(np.concatenate([carries, np.abs(deriv)]), self._alpha, self._slow)
        weight, size = np.split(np.maximum(slow, 1e-300), 2)
        clipped = np.minimum(sq, SLOPE_CLIP * (size / weight) ** 2)
        mean, self._mean = ema(clipped, self._alpha, self._mean)
        fast, self._fast = ema(np.concatenate([carries, clipped]), self._fast_alpha, self._fast)
        fast_weight, fast_mean = np.split(np.maximum(fast, 1e-300), 2)
        scale = np.minimum(mean / weight, FAST_FACTOR * fast_mean / fast_weight)
        combined = (sq / np.maximum(scale, 1e-20)).mean(axis=0)
        ext_sq = np.concatenate([self._sq_tail, combined])
        csum = np.concatenate([[0.0], np.cumsum(ext_sq)])
        mwi = (csum[self.window :] - csum[: -self.window]) / self.window
        self._sq_tail = ext_sq[len(ext_sq) - (self.window - 1) :] if self.window > 1 else np.zeros(0)
        return bp, combined, mwi

