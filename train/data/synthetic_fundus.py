"""Synthetic fundus photographs graded for diabetic retinopathy, seeded and deterministic, so the image family
trains and tests offline.

Each image is a dark field around a circular retina (orange-red, pigmentation and illumination varying per
patient, darker towards the rim), a bright optic disc on the nasal side, a darker macula, and vessel arcades
branching from the disc. Lesions follow the international grading: none; mild (microaneurysms); moderate
(more microaneurysms, blot haemorrhages, hard exudates); severe (many haemorrhages and exudates, cotton-wool
spots); proliferative (new vessels: fine tortuous tangles, and sometimes a large pre-retinal haemorrhage).
Two images (left and right eye) per patient; groups are patients, so splits are patient-wise.
"""

from __future__ import annotations

import hashlib

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.spec import Preprocessing, Window
from edgemed.core.spec.data import DataSpec
from edgemed.train.data.dataset import Dataset

GRADES = ("none", "mild", "moderate", "severe", "proliferative")
# (microaneurysms, haemorrhages, exudates, cotton-wool spots, new-vessel tangles): count ranges per grade
LESIONS = {
    "none": ((0, 0), (0, 0), (0, 0), (0, 0), (0, 0)),
    "mild": ((2, 6), (0, 0), (0, 0), (0, 0), (0, 0)),
    "moderate": ((6, 14), (2, 5), (0, 6), (0, 0), (0, 0)),
    "severe": ((10, 22), (8, 16), (4, 12), (1, 4), (0, 0)),
    "proliferative": ((8, 18), (5, 12), (3, 10), (0, 3), (1, 3)),
}
VESSEL = np.array([0.52, 0.12, 0.10])
HAEM = np.array([0.45, 0.08, 0.06])
EXUDATE = np.array([1.0, 0.92, 0.45])
COTTON = np.array([0.95, 0.88, 0.80])


def _stamp(img: np.ndarray, grid: tuple[np.ndarray, np.ndarray], points: np.ndarray, radius: np.ndarray,
           colour: np.ndarray, strength: float, soft: float = 0.5) -> None:
    """Blend discs of `colour` at `points` ([n, 2] as y, x in -1..1) into `img` [3, H, W]."""
    if len(points) == 0:
        return
    yy, xx = grid
    d = np.sqrt((yy[None] - points[:, 0, None, None]) ** 2 + (xx[None] - points[:, 1, None, None]) ** 2)
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(points),))[:, None, None]
    alpha = np.clip((r - d) / (soft * r + 1e-6) + 0.5, 0, 1).max(axis=0) * strength
    img[:] = img * (1 - alpha) + colour[:, None, None] * alpha


def _walk(rng: np.random.Generator, start: np.ndarray, angle: float, steps: int, step: float, wiggle: float
          ) -> np.ndarray:
    turns = np.cumsum(rng.normal(0, wiggle, steps)) + angle
    moves = step * np.stack([np.sin(turns), np.cos(turns)], axis=1)
    return start + np.cumsum(moves, axis=0)


def _vessels(rng: np.random.Generator, disc: np.ndarray, side: float) -> list[tuple[np.ndarray, float]]:
    """Arcades leaving the disc above and below, curving around the macula, with branches; (points, width)."""
    paths = []
    for sign in (-1, 1):
        for spread in (0.35, 0.9):
            angle = np.pi / 2 * (1 + side) + sign * spread * side + rng.normal(0, 0.1)
            main = _walk(rng, disc, angle, 45, 0.03, 0.06)
            paths.append((main, rng.uniform(0.022, 0.03)))
            for k in rng.choice(np.arange(8, 40), size=2, replace=False):
                branch = _walk(rng, main[k], angle + sign * rng.uniform(0.4, 1.0), 18, 0.03, 0.12)
                paths.append((branch, rng.uniform(0.012, 0.018)))
    return paths


def _fundus(grade: str, size: int, patient: dict, side: float, rng: np.random.Generator) -> np.ndarray:
    lin = np.linspace(-1, 1, size)
    yy, xx = np.meshgrid(lin, lin, indexing="ij")
    centre = rng.normal(0, 0.03, 2)
    d = np.hypot(yy - centre[0], xx - centre[1])
    radius = patient["radius"]
    light = 1 - 0.4 * (d / radius) ** 2 + 0.1 * (yy * patient["tilt"][0] + xx * patient["tilt"][1])
    img = patient["colour"][:, None, None] * light[None]
    grid = (yy, xx)
    disc = centre + np.array([rng.normal(0, 0.04), 0.45 * side])
    macula = centre + np.array([rng.normal(0, 0.03), -0.12 * side])
    _stamp(img, grid, macula[None], 0.16, patient["colour"] * 0.6, 0.6, soft=1.5)
    for path, width in _vessels(rng, disc, side):
        _stamp(img, grid, path, width, VESSEL, 0.8)
    _stamp(img, grid, disc[None], 0.11, np.array([1.0, 0.86, 0.58]), 0.95, soft=0.3)
    counts = [rng.integers(lo, hi + 1) for lo, hi in LESIONS[grade]]

    def spots(n: int) -> np.ndarray:
        r = radius * 0.85 * np.sqrt(rng.random(n))
        a = rng.uniform(0, 2 * np.pi, n)
        return centre + np.stack([r * np.sin(a), r * np.cos(a)], axis=1)

    _stamp(img, grid, spots(counts[0]), rng.uniform(0.03, 0.045, counts[0]), HAEM, 0.9)
    _stamp(img, grid, spots(counts[1]), rng.uniform(0.035, 0.07, counts[1]), HAEM, 0.85, soft=0.8)
    exudates = spots(counts[2])
    _stamp(img, grid, exudates, rng.uniform(0.025, 0.04, counts[2]), EXUDATE, 0.9)
    _stamp(img, grid, spots(counts[3]), rng.uniform(0.05, 0.08, counts[3]), COTTON, 0.55, soft=1.5)
    for _ in range(counts[4]):
        seed_point = disc + rng.normal(0, 0.08, 2) if rng.random() < 0.6 else spots(1)[0]
        for _ in range(4):
            tangle = _walk(rng, seed_point, rng.uniform(0, 2 * np.pi), 14, 0.022, 0.55)
            _stamp(img, grid, tangle, 0.018, HAEM * 1.2, 0.8)
        if rng.random() < 0.3:
            _stamp(img, grid, spots(1), 0.12, HAEM * 0.8, 0.7, soft=0.6)
    img += rng.normal(0, 0.02, img.shape)
    inside = np.clip((radius - d) / 0.03, 0, 1)
    return np.clip(img * inside[None] + 0.02 * rng.random(img.shape), 0, 1).astype(np.float32)


def synthetic_fundus(samples: int = 500, seed: int = 0, image_size: int = 64) -> Dataset:
    """`samples` fundus images of `image_size` pixels square, balanced over the five grades, two per patient."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 32 <= image_size <= 512:
        raise DataError(f"synthetic-fundus images are 32 to 512 pixels square, not {image_size!r}")
    rng = np.random.default_rng(seed)
    y = np.arange(samples) % len(GRADES)
    rng.shuffle(y)
    X = np.empty((samples, 3, image_size, image_size), np.float32)
    patients = []
    for i in range(samples):
        if i % 2 == 0:
            patients.append({"colour": np.array([rng.uniform(0.72, 0.95), rng.uniform(0.28, 0.45),
                                                 rng.uniform(0.08, 0.2)]),
                             "radius": rng.uniform(0.85, 0.95), "tilt": rng.normal(0, 1, 2)})
        X[i] = _fundus(GRADES[y[i]], image_size, patients[-1], 1.0 if i % 2 else -1.0, rng)
    params = f"synthetic-fundus samples={samples} seed={seed} size={image_size}"
    spec = DataSpec(labels=GRADES, layout="batch,channel,height,width", channel_names=("red", "green", "blue"),
                    preprocessing=Preprocessing(units="intensity 0-1", window=Window("image"),
                                                resize=(image_size, image_size)))
    return Dataset(X=X, y=y, groups=np.array([f"patient{i // 2:05d}" for i in range(samples)]), source=params,
                   sha256=hashlib.sha256(params.encode()).hexdigest(), spec=spec)
