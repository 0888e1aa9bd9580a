"""Synthetic multi-lead ECG with P-QRS-T morphology in five rhythm classes, seeded and deterministic.

Each beat is a sum of Gaussian waves (P, Q, R, S, T) whose timing follows the RR interval (QT shortens
with rate, Bazett-like). Every synthetic patient has its own wave amplitudes and widths, and each lead
sees the waves through its own fixed gains, as leads see the heart's dipole from different angles.
Classes: sinus rhythm; atrial fibrillation (irregular RR, no P waves, fibrillatory f-waves);
bradycardia; tachycardia; sinus with frequent premature ventricular contractions (wide QRS, no P,
compensatory pause). Recordings carry Gaussian noise, baseline wander and mains hum.
"""

from __future__ import annotations

import hashlib

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec import Preprocessing, Window
from edgemed.core.spec.data import DataSpec
from edgemed.train.data.dataset import Dataset

RHYTHMS = ("sinus", "afib", "brady", "tachy", "pvc")
# Wave: (amplitude mV, centre s relative to R, width s). T centre is scaled with sqrt(RR).
WAVES = {"P": (0.15, -0.17, 0.025), "Q": (-0.1, -0.03, 0.010), "R": (1.0, 0.0, 0.012),
         "S": (-0.25, 0.03, 0.012), "T": (0.3, 0.27, 0.045)}


def _beat_times(rhythm: str, duration: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """R-peak times and each beat's kind: "N", "S" (a premature atrial beat: early, normal QRS, another P wave, no
    compensatory pause) or "V" (a premature ventricular beat: early, wide QRS, no P, compensatory pause). Rhythm
    "mixed" is sinus with both kinds of ectopic beats."""
    bpm = {"sinus": rng.uniform(60, 95), "afib": rng.uniform(80, 140), "brady": rng.uniform(35, 52),
           "tachy": rng.uniform(110, 160), "pvc": rng.uniform(60, 95), "mixed": rng.uniform(55, 100)}[rhythm]
    rr_mean = 60.0 / bpm
    p_pvc = {"pvc": 0.45, "mixed": 0.12}.get(rhythm, 0.0)
    p_pac = 0.1 if rhythm == "mixed" else 0.0
    t, times, kinds = rng.uniform(-rr_mean, 0.0), [], []
    since_ectopic = 0
    while t < duration + 1.0:
        kind, rr = "N", rr_mean * (1 + 0.03 * rng.standard_normal())
        if rhythm == "afib":
            rr = rr_mean * rng.uniform(0.55, 1.5)
        elif since_ectopic >= 2 and rng.random() < p_pvc:
            kind, rr = "V", rr_mean * rng.uniform(0.55, 0.7)
        elif since_ectopic >= 2 and rng.random() < p_pac:
            kind, rr = "S", rr_mean * rng.uniform(0.6, 0.8)
        if kinds and kinds[-1] == "V":
            rr = 2 * rr_mean - (times[-1] - times[-2] if len(times) > 1 else rr_mean)  # compensatory pause
        t += rr
        since_ectopic = 0 if kind != "N" else since_ectopic + 1
        times.append(t)
        kinds.append(kind)
    return np.array(times), np.array(kinds)


def _record(rhythm: str, patient: dict, fs: float, n: int, leads: int, rng: np.random.Generator,
            beats: list | None = None) -> np.ndarray:
    """`n` samples of one rhythm; the R-peak times and PVC flags are appended to `beats` when given."""
    t = np.arange(n) / fs
    sig = np.zeros((leads, n), np.float64)
    times, kinds = _beat_times(rhythm, n / fs, rng)
    if beats is not None:
        beats.append((times, kinds))
    rr = np.diff(np.concatenate([[times[0] - 60 / 75], times]))
    for beat_t, kind, beat_rr in zip(times, kinds, rr, strict=True):
        is_pvc = kind == "V"
        lo, hi = max(0, int((beat_t - 0.4) * fs)), min(n, int((beat_t + 0.7) * fs))
        if lo >= hi:
            continue
        dt = t[lo:hi] - beat_t
        for wave, (amp, centre, width) in patient["waves"].items():
            if wave == "P" and (rhythm == "afib" or is_pvc):
                continue
            if wave == "P" and kind == "S":
                amp, centre = -0.7 * amp, 0.8 * centre  # an ectopic atrial focus: another, closer P wave
            if wave == "T":
                centre = centre * np.sqrt(np.clip(beat_rr, 0.3, 2.0))
            if is_pvc:
                if wave in ("Q", "S"):
                    continue
                width, amp = (width * 2.2, amp * 1.8) if wave == "R" else (width * 1.4, -amp * 1.3)
            shape = amp * np.exp(-0.5 * (dt - centre) ** 2 / width**2)
            sig[:, lo:hi] += patient["gains"][:, [list(WAVES).index(wave)]] * shape
    if rhythm == "afib":
        f = rng.uniform(4, 8)
        sig += 0.06 * patient["gains"][:, [0]] * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3, (leads, 1))
                                                         + 1.5 * np.sin(2 * np.pi * 0.3 * t))
    wander = sum(rng.uniform(0.05, 0.25) * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 6.3))
                 for _ in range(2))
    hum = rng.uniform(0, 0.02) * np.sin(2 * np.pi * patient["mains"] * t)
    noise = rng.normal(0, rng.uniform(0.01, 0.04), sig.shape)
    return (patient["scale"] * sig + wander + hum + noise).astype(np.float32)


def _patient(leads: int, rng: np.random.Generator) -> dict:
    waves = {k: (a * rng.uniform(0.7, 1.3), c * rng.uniform(0.9, 1.1), w * rng.uniform(0.8, 1.25))
             for k, (a, c, w) in WAVES.items()}
    gains = rng.uniform(0.4, 1.2, (leads, len(WAVES))) * np.where(rng.random((leads, 1)) < 0.2, -1, 1)
    gains[0] = np.abs(gains[0])  # lead I-like: upright complexes
    return {"waves": waves, "gains": gains, "scale": rng.uniform(0.7, 1.4), "mains": rng.choice([50.0, 60.0])}


def synthetic_recording(rhythm: str = "mixed", seconds: float = 60.0, fs: float = 250.0, leads: int = 2,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One continuous recording with known beats: (signal [leads, samples] in mV, R-peak sample positions inside
    the recording, and each of those beats' AAMI class: "N", "S" or "V")."""
    rng = np.random.default_rng(seed)
    beats: list = []
    n = int(round(seconds * fs))
    sig = _record(rhythm, _patient(leads, rng), fs, n, leads, rng, beats)
    times, kinds = beats[0]
    inside = (times >= 0) & (times * fs < n - 1)
    return sig, np.round(times[inside] * fs).astype(np.int64), kinds[inside]


def synthetic_ecg(samples: int = 1000, seed: int = 0, leads: int = 2, sampling_rate_hz: float = 250.0,
                  window_s: float = 10.0, patients: int = 40) -> Dataset:
    """`samples` windows of `window_s` seconds, balanced over the five rhythms, from `patients` patients."""
    if isinstance(leads, bool) or not isinstance(leads, int) or leads < 1:
        raise DataError(f"synthetic-ecg takes a number of leads (`leads` 2), not {leads!r}")
    rng = np.random.default_rng(seed)
    people = [_patient(leads, rng) for _ in range(patients)]
    n = int(round(window_s * sampling_rate_hz))
    X = np.empty((samples, leads, n), np.float32)
    y = np.arange(samples) % len(RHYTHMS)
    rng.shuffle(y)
    groups = rng.integers(0, patients, samples)
    for i in range(samples):
        X[i] = _record(RHYTHMS[y[i]], people[groups[i]], sampling_rate_hz, n, leads, rng)
    params = f"synthetic-ecg samples={samples} seed={seed} leads={leads} fs={sampling_rate_hz} window={window_s}"
    spec = DataSpec(labels=RHYTHMS, layout="batch,lead,sample",
                    channel_names=tuple(f"lead{i + 1}" for i in range(leads)),
                    preprocessing=Preprocessing(sampling_rate_hz=sampling_rate_hz, units="mV",
                                                window=Window("rhythm", seconds=window_s)),
                    signal_checks=("range", "flat", "clipping"))
    return Dataset(X=X, y=y, groups=np.array([f"p{g:03d}" for g in groups]), source=params,
                   sha256=hashlib.sha256(params.encode()).hexdigest(), spec=spec)
