"""Inputs read from a file for a model: the samples, what the file says about them (lengths, true labels, ids) and,
for signals cut from a raw recording, the rate they were conditioned to."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunInput:
    x: np.ndarray
    description: str
    lengths: np.ndarray | None = None
    truth: list[str] | None = None
    ids: list[str] = field(default_factory=list)
    sampling_rate_hz: float | None = None
