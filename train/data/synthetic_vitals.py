"""Synthetic vital-sign sequences of varying length with a deterioration label, seeded and deterministic.

Each stay is a reading every 5 minutes of heart rate, SpO2, respiratory rate, systolic and diastolic
blood pressure and temperature around the patient's own baseline, with autocorrelated noise and the
occasional artefact spike. Deteriorating stays (label 1) drift from a random onset onwards, as in
early sepsis or respiratory failure: heart and breathing rates up, SpO2 and blood pressure down,
temperature up. The drift size varies, so some positives are subtle.
"""

from __future__ import annotations

import hashlib

import numpy as np

from edgemed.core.spec import Preprocessing, Window
from edgemed.core.spec.data import DataSpec
from edgemed.train.data.dataset import Dataset

FEATURES = ("heart_rate", "spo2", "resp_rate", "sbp", "dbp", "temperature")
BASELINE = np.array([78.0, 97.0, 16.0, 122.0, 76.0, 36.9])
SPREAD = np.array([10.0, 1.2, 2.5, 12.0, 8.0, 0.3])
NOISE = np.array([3.0, 0.6, 1.2, 5.0, 4.0, 0.08])
DRIFT = np.array([30.0, -7.0, 10.0, -28.0, -15.0, 1.4])
READING_PERIOD_S = 300.0


def synthetic_vitals(samples: int = 800, seed: int = 0, min_length: int = 24, max_length: int = 96,
                     prevalence: float = 0.35) -> Dataset:
    """`samples` stays of `min_length`..`max_length` readings, padded at the end, with lengths."""
    rng = np.random.default_rng(seed)
    X = np.zeros((samples, max_length, len(FEATURES)), np.float32)
    lengths = rng.integers(min_length, max_length + 1, samples)
    y = (rng.random(samples) < prevalence).astype(np.int64)
    for i in range(samples):
        n = lengths[i]
        base = BASELINE + SPREAD * rng.standard_normal(len(FEATURES))
        noise = np.zeros((n, len(FEATURES)))
        for t in range(1, n):  # AR(1) noise: vitals wander, they do not jump
            noise[t] = 0.8 * noise[t - 1] + NOISE * rng.standard_normal(len(FEATURES)) * 0.6
        seq = base + noise
        if y[i]:
            onset = rng.integers(n // 3, max(n // 3 + 1, n - 6))
            ramp = np.clip((np.arange(n) - onset) / max(n - onset, 1), 0, 1)[:, None]
            seq = seq + ramp * DRIFT * rng.uniform(0.35, 1.0)
        spikes = rng.random(n) < 0.02
        seq[spikes] += NOISE * rng.uniform(-4, 4, (int(spikes.sum()), len(FEATURES)))
        seq[:, 1] = np.minimum(seq[:, 1], 100.0)
        X[i, :n] = seq
    params = f"synthetic-vitals samples={samples} seed={seed} lengths={min_length}..{max_length}"
    spec = DataSpec(labels=("stable", "deteriorating"), layout="batch,time,feature", channel_names=FEATURES,
                    preprocessing=Preprocessing(sampling_rate_hz=1.0 / READING_PERIOD_S,
                                                window=Window("stay", period_s=READING_PERIOD_S)))
    return Dataset(X=X, y=y, groups=np.array([f"stay{i:05d}" for i in range(samples)]), source=params,
                   sha256=hashlib.sha256(params.encode()).hexdigest(), spec=spec, lengths=lengths)
