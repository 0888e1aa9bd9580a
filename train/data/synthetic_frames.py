"""Synthetic short image sequences (ultrasound-like clips), seeded and deterministic.

A bright elliptical structure in multiplicative (4-look, gamma) speckle noise, in three classes: "still" (only probe
jitter), "beating" (its size pulses at 0.8-2.5 Hz, like a heart chamber) and "sliding" (it drifts
across the field, like a probe sweep). Telling them apart needs the sequence, not any single frame.
"""

from __future__ import annotations

import hashlib

import numpy as np

from edgemed.core.spec import Preprocessing, Window
from edgemed.core.spec.data import DataSpec
from edgemed.train.data.dataset import Dataset

CLASSES = ("still", "beating", "sliding")


def synthetic_frames(samples: int = 600, seed: int = 0, frames: int = 10, size: int = 32,
                     frame_rate_hz: float = 10.0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = np.empty((samples, frames, 1, size, size), np.float32)
    y = np.arange(samples) % len(CLASSES)
    rng.shuffle(y)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    t = np.arange(frames) / frame_rate_hz
    for i in range(samples):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        ry, rx = rng.uniform(0.12, 0.22, 2) * size
        scale = np.ones(frames)
        vy, vx = 0.0, 0.0
        if CLASSES[y[i]] == "beating":
            scale = 1 + rng.uniform(0.2, 0.35) * np.sin(2 * np.pi * rng.uniform(0.8, 2.5) * t + rng.uniform(0, 6.3))
        elif CLASSES[y[i]] == "sliding":
            angle = rng.uniform(0, 2 * np.pi)
            speed = rng.uniform(0.25, 0.45) * size / max(t[-1], 1e-6) / 1.5
            vy, vx = speed * np.sin(angle), speed * np.cos(angle)
        for f in range(frames):
            jy, jx = rng.normal(0, 0.3, 2)
            dy = (yy - cy - vy * t[f] - jy) / (ry * scale[f])
            dx = (xx - cx - vx * t[f] - jx) / (rx * scale[f])
            d = dy**2 + dx**2
            img = 0.2 + 0.8 * np.exp(-2.0 * np.maximum(d - 1, 0)) * (d < 2.5)
            X[i, f, 0] = img * rng.gamma(4.0, 0.25, (size, size))  # 4-look speckle, mean 1
    params = f"synthetic-frames samples={samples} seed={seed} frames={frames} size={size}"
    spec = DataSpec(labels=CLASSES, layout="batch,frame,channel,height,width", channel_names=("intensity",),
                    preprocessing=Preprocessing(frame_rate_hz=frame_rate_hz, window=Window("clip", frames=frames)))
    return Dataset(X=X, y=y, groups=np.array([f"clip{i:05d}" for i in range(samples)]), source=params,
                   sha256=hashlib.sha256(params.encode()).hexdigest(), spec=spec)
