"""What a model returns: logits per sample with their labels, probabilities and quality marks computed on first
access, and the check every set of logits passes (one per label, all finite)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemed.core.calibration import softmax
from edgemed.core.errors import OutputError
from edgemed.core.spec import ModelSpec
from edgemed.runtime.model.validate import Assessment

UNCERTAIN = "uncertain"  # the label of a prediction below the model's abstention threshold
SMALL_LOGITS = 256  # at most this many logits are checked in Python floats


def check_outputs(logits: np.ndarray, where: str, classes: int | None = None) -> np.ndarray:
    """Logits must be [samples, classes] (one per label) and finite: a NaN would otherwise be reported as the
    first label."""
    if classes is not None and (logits.ndim != 2 or logits.shape[1] != classes):
        raise OutputError(f"{where} produced logits of shape {list(logits.shape)}, but its metadata names {classes} "
                          "labels; the labels do not describe this graph's outputs")
    # The sum is finite exactly when every logit is. A few logits are summed as Python floats (doubles: no
    # overflow, and cheaper than a numpy reduction at this size); more in float32, where logits near 1e38 would
    # overflow the sum and are refused as well (no label means anything there).
    total = sum(logits.ravel().tolist()) if logits.size <= SMALL_LOGITS else logits.sum()
    if not math.isfinite(total):
        bad = int(np.size(logits) - np.count_nonzero(np.isfinite(logits)))
        raise OutputError(f"{where} produced {bad} NaN/Inf logit(s); the input drives the model outside its "
                          "numeric range, so no label is given. Check the input's units and scaling")
    return logits


@dataclass(eq=False)
class Prediction:
    """Per-sample logits [n, classes] and class names. Probabilities (the softmax of the logits) and the quality
    marks are computed on first access, so a caller that needs only the top class does not pay for them."""

    logits: np.ndarray
    labels: tuple[str, ...]
    assessment: Assessment | None = field(default=None, repr=False)
    spec: ModelSpec | None = field(default=None, repr=False)

    @functools.cached_property
    def probabilities(self) -> np.ndarray:
        return softmax(self.logits, dtype=None)

    @property
    def predicted(self) -> list[str]:
        """The top class of each sample, or UNCERTAIN where the model's calibration sets an abstention threshold
        and the top probability is below it."""
        top = [self.labels[i] for i in self.logits.argmax(axis=1)]
        threshold = self.spec.calibration.abstain_below if self.spec is not None else None
        if threshold is None:
            return top
        confident = self.probabilities.max(axis=1) >= threshold
        return [t if ok else UNCERTAIN for t, ok in zip(top, confident, strict=True)]

    @functools.cached_property
    def quality(self) -> list[tuple[str, ...]]:
        """Per sample: () when the input looked like the training data, else marks such as ("flat_line",)."""
        if self.assessment is None or self.spec is None:
            return [()] * len(self.logits)
        return self.assessment.quality(self.spec)

    def records(self) -> list[dict[str, Any]]:
        return [{"label": label, "probabilities": dict(zip(self.labels, map(float, p), strict=True)),
                 "quality": list(q)}
                for label, p, q in zip(self.predicted, self.probabilities, self.quality, strict=True)]
