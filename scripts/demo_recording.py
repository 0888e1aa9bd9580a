"""A synthetic bedside recording for `make demo`'s monitor replay: sinus rhythm with premature beats, then atrial
fibrillation, as a .npy array [leads, samples] in mV (replayed with `--sampling-rate`).

Usage: python scripts/demo_recording.py OUT.npy [--seconds 240] [--rate 180]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgemed.core.atomic import write_atomic
from edgemed.train.data.synthetic_ecg import synthetic_recording


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--rate", type=float, default=180.0)
    args = parser.parse_args()
    half = args.seconds / 2
    # seeds far from those of the synthetic-beats training records (0, 1, 2, ...): a patient the model never saw
    parts = [synthetic_recording(rhythm, half, args.rate, 1, seed=90_001 + k)[0]
             for k, rhythm in enumerate(("mixed", "afib"))]
    signal = np.concatenate(parts, axis=1).astype(np.float32)

    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, signal)

    write_atomic(args.out, write, replace=True)
    print(f"wrote {args.out}: {args.seconds:.0f} s at {args.rate:g} Hz")


if __name__ == "__main__":
    main()
