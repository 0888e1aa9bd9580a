"""Raw ECG to model input: band-pass, then resampling to the model's rate (numpy only), the same in training, in
the runtime on a whole record and chunk by chunk in a stream.

Causal conditioning (`Preprocessing.causal`) filters forward only and resamples with `CausalResampler`, so output
sample m depends on raw samples up to m alone and a stream equals a whole recording sample for sample. The price is
a delay (`Conditioner.delay_s`): a raw position p seconds in appears at p + delay_s in the conditioned signal, and
every beat position is moved by it (`to_conditioned`). Zero-phase conditioning (the older default) needs the whole
recording and has no delay.
"""

from __future__ import annotations

import numpy as np

from edgemed.core.errors import InputError
from edgemed.core.signal import CausalResampler, bandpass, butter_bandpass_sos, resample, sosfilt, sosfilt_zi
from edgemed.core.spec import ModelSpec, Preprocessing
from edgemed.runtime.model.validate import positive_rate

CHUNK_S = 60.0  # a longer push is filtered in chunks of this length (the filter's block products copy their input)


class Conditioner:
    """Causal conditioning chunk by chunk: `push(raw [leads, n])` returns the conditioned samples it determines."""

    def __init__(self, pre: Preprocessing, from_hz: float, leads: int) -> None:
        if not pre.causal:
            raise InputError("only causal preprocessing can be applied chunk by chunk")
        self.from_hz = float(from_hz)
        self.to_hz = float(pre.sampling_rate_hz or from_hz)
        self._sos = (butter_bandpass_sos(pre.bandpass.order, pre.bandpass.low_hz, pre.bandpass.high_hz, from_hz)
                     if pre.bandpass is not None else None)
        self._zi: np.ndarray | None = None  # set from the first sample: the filter starts in steady state
        self._resampler = CausalResampler(self.from_hz, self.to_hz, leads) if self.to_hz != self.from_hz else None

    @property
    def delay_s(self) -> float:
        """How late a raw event appears in the conditioned signal (the resampling filter's delay)."""
        return self._resampler.delay_s if self._resampler is not None else 0.0

    def push(self, raw: np.ndarray) -> np.ndarray:
        x = np.asarray(raw, dtype=np.float64)
        step = max(1, int(CHUNK_S * self.from_hz))
        if x.shape[1] > step:  # a whole recording: in chunks (the same samples), in bounded memory
            return np.concatenate([self.push(x[:, i : i + step]) for i in range(0, x.shape[1], step)], axis=1)
        if self._sos is not None and x.shape[1]:
            if self._zi is None:
                self._zi = np.outer(x[:, 0], sosfilt_zi(self._sos))
            x, self._zi = sosfilt(self._sos, x, self._zi)
        if self._resampler is not None:
            x = self._resampler.push(x)
        return x.astype(np.float32)


def condition(raw: np.ndarray, from_hz: float, pre: Preprocessing) -> tuple[np.ndarray, float]:
    """A whole recording [leads, n] conditioned as `pre` says, and its delay in seconds."""
    if pre.causal:
        c = Conditioner(pre, from_hz, raw.shape[0])
        return c.push(raw), c.delay_s
    sig = bandpass(raw, from_hz, pre.bandpass) if pre.bandpass is not None else np.asarray(raw, np.float32)
    return resample(sig, from_hz, pre.sampling_rate_hz or from_hz), 0.0


def to_conditioned(positions: np.ndarray, from_hz: float, to_hz: float, delay_s: float) -> np.ndarray:
    """Raw sample positions mapped into the conditioned signal (rate change plus the conditioning delay)."""
    return np.round((np.asarray(positions, np.float64) / from_hz + delay_s) * to_hz).astype(np.int64)


RESAMPLE_FACTOR = 64  # a raw signal's rate must be within this factor of the model's (when the spec sets no range)


def check_raw_rate(spec: ModelSpec, fs: float, where: str) -> float:
    """The rate of a raw signal the runtime will resample: within the spec's accepted range, or within a factor
    of 64 of the model's rate."""
    fs = positive_rate(fs, f"{where}: sampling rate")
    target = spec.preprocessing.sampling_rate_hz
    lo, hi = spec.preprocessing.rate_range_hz or ((target / RESAMPLE_FACTOR, target * RESAMPLE_FACTOR) if target
                                                    else (fs, fs))
    if not lo <= fs <= hi:
        raise InputError(f"{where}: sampled at {fs:g} Hz, outside the {lo:g}-{hi:g} Hz this model accepts for "
                         f"resampling to {target:g} Hz")
    return fs
