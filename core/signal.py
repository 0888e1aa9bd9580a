"""Signal conditioning shared by training and the runtime, in numpy alone: Butterworth band-pass (forward and
zero-phase) and anti-aliased polyphase resampling.

Both follow scipy's definitions (`butter` + `sosfiltfilt` with odd padding and steady-state initial
conditions; `resample_poly` with a Kaiser-windowed FIR, beta 5, 10 zero crossings per side), and the tests
compare them with scipy, but neither needs it, so the bedside package filters and resamples raw recordings
with numpy and onnxruntime only. The IIR filter runs as a state-space recursion over blocks of samples: a
matrix product per block instead of a Python loop per sample.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec import BandpassFilter

BLOCK = 256  # samples per block of the block-recursive IIR filter
RESAMPLE_BLOCK = 1 << 16  # outputs per gather in the polyphase resampler


def butter_bandpass_sos(order: int, low_hz: float, high_hz: float, fs: float) -> np.ndarray:
    """Second-order sections [order, 6] of a digital Butterworth band-pass (bilinear transform, pre-warped)."""
    if not 0 < low_hz < high_hz < fs / 2:
        raise DataError(f"band-pass {low_hz}-{high_hz} Hz needs 0 < low < high < fs/2 = {fs / 2:g} Hz")
    warped = 4.0 * fs * np.tan(np.pi * np.array([low_hz, high_hz]) / fs) / 2.0
    bw, wo = warped[1] - warped[0], math.sqrt(warped[0] * warped[1])
    proto = -np.exp(1j * np.pi * np.arange(-order + 1, order, 2) / (2 * order))
    scaled = proto * bw / 2
    root = np.sqrt(scaled**2 - wo**2)
    poles_s = np.concatenate([scaled + root, scaled - root])
    gain_s = bw**order
    fs2 = 2.0 * fs
    poles_z = (fs2 + poles_s) / (fs2 - poles_s)
    # order zeros at s = 0 map to z = 1, and the order zeros at infinity to z = -1.
    gain_z = gain_s * np.real(fs2**order / np.prod(fs2 - poles_s))
    upper = poles_z[poles_z.imag > 1e-12]
    if len(upper) != order:
        raise DataError(f"band-pass {low_hz}-{high_hz} Hz at {fs:g} Hz has real poles; widen the band")
    sos = np.zeros((order, 6))
    for i, p in enumerate(sorted(upper, key=lambda p: abs(p))):
        sos[i, :3] = (1.0, 0.0, -1.0)  # one zero at z = 1 and one at z = -1 per section
        sos[i, 3:] = (1.0, -2.0 * p.real, abs(p) ** 2)
    sos[0, :3] *= gain_z
    return sos


def _state_space(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The cascade of direct-form-II-transposed sections as one system: s' = A s + B x, y = C s + D x. The state
    holds each section's two delays, in section order (scipy's sosfilt `zi` layout, flattened)."""
    n = len(sos)
    A, B, C, D = np.zeros((2 * n, 2 * n)), np.zeros(2 * n), np.zeros(2 * n), 1.0
    # Row vector mapping (state, x) to the current section's input: starts as x itself.
    in_state, in_x = np.zeros(2 * n), 1.0
    for i, (b0, b1, b2, a0, a1, a2) in enumerate(sos):
        b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
        z0, z1 = 2 * i, 2 * i + 1
        # y_i = b0 * u + z0 ; z0' = (b1 - a1 b0) u - a1 z0 + z1 ; z1' = (b2 - a2 b0) u - a2 z0
        out_state = b0 * in_state
        out_state[z0] += 1.0
        out_x = b0 * in_x
        A[z0] = (b1 - a1 * b0) * in_state
        A[z0, z0] += -a1
        A[z0, z1] += 1.0
        B[z0] = (b1 - a1 * b0) * in_x
        A[z1] = (b2 - a2 * b0) * in_state
        A[z1, z0] += -a2
        B[z1] = (b2 - a2 * b0) * in_x
        in_state, in_x = out_state, out_x
    C, D = in_state, in_x
    return A, B, C, D


def sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """Steady-state initial state for a unit step input (scipy's `sosfilt_zi`, flattened to the cascade state)."""
    A, B, _, _ = _state_space(sos)
    return np.linalg.solve(np.eye(len(A)) - A, B)


@functools.lru_cache(maxsize=64)
def _block_operators(sos_bytes: bytes, sections: int, L: int) -> tuple[np.ndarray, ...]:
    """The block-recursion matrices of a filter for blocks of L samples (made once per filter and block length: a
    stream filters every chunk with the same ones). Read-only."""
    sos = np.frombuffer(sos_bytes, dtype=np.float64).reshape(sections, 6)
    A, B, C, D = _state_space(sos)
    m = len(A)
    powers = [np.eye(m)]
    for _ in range(L):
        powers.append(A @ powers[-1])
    obs = np.stack([C @ powers[k] for k in range(L)])  # [L, m]: y_k from s0
    h = np.array([D] + [C @ powers[k - 1] @ B for k in range(1, L)])  # impulse response
    T = np.zeros((L, L))
    for k in range(L):
        T[k:, k] = h[: L - k]
    ctrl = np.stack([powers[L - 1 - j] @ B for j in range(L)], axis=1)  # [m, L]: s_L from x_j
    out = (A, B, obs, T, ctrl, powers[L])
    for arr in out:
        arr.flags.writeable = False
    return out


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Filter `x` [channels, samples] (float64) from state `zi` [channels, states]; returns (y, final state).

    Block recursion: with the impulse-response Toeplitz matrix T of a block, y_block = x_block T' + s0 O' and
    s_next = A^L s0 + x_block K', one matrix product for all blocks and a short loop over block states."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    channels, n = x.shape
    L = min(BLOCK, max(1, n))
    A, B, obs, T, ctrl, AL = _block_operators(sos.tobytes(), len(sos), L)
    m = len(A)
    state = np.zeros((channels, m)) if zi is None else np.array(zi, dtype=np.float64)
    blocks = -(-n // L)
    padded = np.zeros((channels, blocks * L))
    padded[:, :n] = x
    xb = padded.reshape(channels, blocks, L)
    y = xb @ T.T  # forced response of every block
    drive = xb @ ctrl.T  # [channels, blocks, m]
    starts = np.empty((channels, blocks, m))
    for b in range(blocks):
        starts[:, b] = state
        state = state @ AL.T + drive[:, b]
    y += starts @ obs.T
    y = y.reshape(channels, blocks * L)[:, :n]
    if blocks * L != n:  # the last block was padded: the final state is that after sample n
        last = starts[:, -1]
        for j in range(n - (blocks - 1) * L):
            last = last @ A.T + np.outer(padded[:, (blocks - 1) * L + j], B)
        state = last
    return y, state


def sosfiltfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Zero-phase filtering along the last axis: odd extension of 3 * (2 * sections + 1) samples at each end,
    steady-state initial conditions, forward then backward (scipy's `sosfiltfilt` defaults)."""
    ntaps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    edge = 3 * ntaps
    n = x.shape[-1]
    if n <= edge:
        raise DataError(f"a signal of {n} samples is too short to band-pass (needs more than {edge})")
    flat = x.reshape(-1, n).astype(np.float64)
    ext = np.concatenate([2 * flat[:, :1] - flat[:, edge:0:-1], flat, 2 * flat[:, -1:] - flat[:, -2 : -edge - 2 : -1]],
                         axis=1)
    zi = sosfilt_zi(sos)
    y, _ = sosfilt(sos, ext, np.outer(ext[:, 0], zi))
    y, _ = sosfilt(sos, y[:, ::-1], np.outer(y[:, -1], zi))
    return y[:, ::-1][:, edge:-edge].reshape(x.shape)


def bandpass(x: np.ndarray, fs: float, spec: BandpassFilter, axis: int = -1) -> np.ndarray:
    """Butterworth band-pass along `axis`; zero-phase (forward-backward) when the spec says so. float32 out."""
    sos = butter_bandpass_sos(spec.order, spec.low_hz, spec.high_hz, fs)
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    if spec.zero_phase:
        out = sosfiltfilt(sos, moved)
    else:
        flat = moved.reshape(-1, moved.shape[-1])
        out = sosfilt(sos, flat)[0].reshape(moved.shape)
    return np.moveaxis(out, -1, axis).astype(np.float32)


def kaiser_lowpass(numtaps: int, cutoff: float, beta: float = 5.0) -> np.ndarray:
    """Windowed-sinc low-pass FIR, `cutoff` as a fraction of Nyquist, unit gain at DC (scipy's `firwin`)."""
    m = np.arange(numtaps) - (numtaps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, beta)
    return h / h.sum()


def resample_poly(x: np.ndarray, up: int, down: int, axis: int = -1) -> np.ndarray:
    """Upsample by `up`, low-pass, downsample by `down` (scipy's `resample_poly` with its default window and
    zero padding), computing only the outputs kept, one polyphase branch at a time."""
    g = math.gcd(up, down)
    up, down = up // g, down // g
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    if up == down == 1:
        return np.moveaxis(x.copy(), -1, axis)
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = kaiser_lowpass(2 * half_len + 1, 1.0 / max_rate) * up
    n_in = x.shape[-1]
    n_out = -(-n_in * up // down)
    n_pre_pad = down - half_len % down
    h = np.concatenate([np.zeros(n_pre_pad), h])
    n_pre_remove = (half_len + n_pre_pad) // down
    flat = x.reshape(-1, n_in)
    # y_full[m] = sum_k h[k] * xu[m * down - k], xu the zero-stuffed input; kept: m in n_pre_remove + 0..n_out-1.
    # Output m uses branch (m * down) % up of h, applied to x[(m * down) // up - t], t = 0..taps-1. Outputs of one
    # branch are `up` apart, and their first input index `down` apart: a strided view of sliding windows.
    taps = -(-len(h) // up)
    hp = np.zeros(taps * up)
    hp[: len(h)] = h
    branches = hp.reshape(taps, up).T[:, ::-1]  # branch phase, reversed: dot with a window x[first-taps+1 .. first]
    pad = taps + down + 1
    xpad = np.concatenate([np.zeros((len(flat), pad)), flat, np.zeros((len(flat), pad + taps))], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(xpad, taps, axis=1)  # [channels, starts, taps]
    out = np.empty((len(flat), n_out))
    for offset in range(min(up, n_out)):
        m0 = n_pre_remove + offset
        count = len(range(offset, n_out, up))
        start = (m0 * down) // up + pad - taps + 1
        rows = windows[:, start : start + (count - 1) * down + 1 : down]
        out[:, offset::up] = rows @ branches[(m0 * down) % up]
    return np.moveaxis(out.reshape(x.shape[:-1] + (n_out,)), -1, axis)


MAX_RATIO_TERM = 1000


def rate_ratio(from_hz: float, to_hz: float) -> tuple[int, int]:
    """(up, down) with to/from = up/down, both at most 1000 (so the filter stays small)."""
    if not (math.isfinite(from_hz) and math.isfinite(to_hz) and from_hz > 0 and to_hz > 0):
        raise DataError(f"cannot resample from {from_hz} Hz to {to_hz} Hz: rates must be positive numbers")
    ratio = Fraction(to_hz / from_hz).limit_denominator(MAX_RATIO_TERM)
    if not 1 <= ratio.numerator <= MAX_RATIO_TERM:
        raise DataError(f"cannot resample from {from_hz:g} Hz to {to_hz:g} Hz: the ratio is beyond 1:{MAX_RATIO_TERM}")
    return ratio.numerator, ratio.denominator


def resample(x: np.ndarray, from_hz: float, to_hz: float, axis: int = -1) -> np.ndarray:
    """Polyphase resampling (anti-aliased) by the rational ratio to_hz / from_hz; float32 out."""
    if from_hz == to_hz:
        return np.asarray(x, dtype=np.float32)
    up, down = rate_ratio(from_hz, to_hz)
    return resample_poly(x, up, down, axis=axis).astype(np.float32)


class CausalResampler:
    """Polyphase resampling by the same Kaiser-windowed filter as `resample_poly`, but causal and chunk by chunk:
    output m uses inputs up to floor(m * down / up) only, so a stream and a whole recording give the same samples.
    The filter delays the signal by `delay_s` seconds (half its length)."""

    def __init__(self, from_hz: float, to_hz: float, channels: int) -> None:
        self.up, self.down = rate_ratio(from_hz, to_hz)
        half_len = 10 * max(self.up, self.down)
        h = kaiser_lowpass(2 * half_len + 1, 1.0 / max(self.up, self.down)) * self.up
        self.taps = -(-len(h) // self.up)
        hp = np.zeros(self.taps * self.up)
        hp[: len(h)] = h
        self.branches = hp.reshape(self.taps, self.up).T  # [phase, t]: h[phase + t * up]
        self.delay_s = half_len / (from_hz * self.up)
        self._hist = np.zeros((channels, self.taps - 1))
        self._n_in = 0
        self._m = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        """Resample a chunk [channels, samples]; returns every output sample its inputs now determine."""
        x = np.asarray(x, dtype=np.float64)
        buf = np.concatenate([self._hist, x], axis=1)
        first = self._n_in - (self.taps - 1)  # input index of buf[:, 0]
        last = self._n_in + x.shape[1] - 1
        m_end = -(-(last + 1) * self.up // self.down)  # outputs m with floor(m * down / up) <= last
        out = np.empty((x.shape[0], max(m_end - self._m, 0)))
        for start in range(self._m, m_end, RESAMPLE_BLOCK):
            ms = np.arange(start, min(start + RESAMPLE_BLOCK, m_end))
            i0 = ms * self.down // self.up
            idx = i0[:, None] - np.arange(self.taps)[None, :] - first
            out[:, start - self._m : start - self._m + len(ms)] = np.einsum(
                "cot,ot->co", buf[:, idx], self.branches[(ms * self.down) % self.up])
        self._m = max(m_end, self._m)
        self._n_in += x.shape[1]
        self._hist = buf[:, buf.shape[1] - (self.taps - 1) :] if self.taps > 1 else buf[:, :0]
        return out
