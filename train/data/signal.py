"""Signal conditioning shared by the ECG sources: resampling and band-pass filtering."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal

from edgemed.core.spec import BandpassFilter


def resample(x: np.ndarray, from_hz: float, to_hz: float, axis: int = -1) -> np.ndarray:
    """Polyphase resampling (anti-aliased) by the rational ratio to_hz / from_hz."""
    if from_hz == to_hz:
        return x
    ratio = Fraction(to_hz / from_hz).limit_denominator(1000)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=axis).astype(np.float32)


def bandpass(x: np.ndarray, fs: float, spec: BandpassFilter, axis: int = -1) -> np.ndarray:
    """Butterworth band-pass; zero-phase (forward-backward) when the spec says so."""
    sos = signal.butter(spec.order, [spec.low_hz, spec.high_hz], btype="bandpass", fs=fs, output="sos")
    out = signal.sosfiltfilt(sos, x, axis=axis) if spec.zero_phase else signal.sosfilt(sos, x, axis=axis)
    return out.astype(np.float32)
