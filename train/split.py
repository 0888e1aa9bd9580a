"""Patient-wise train/validation splits: every group (record, patient, stay) lands wholly on one side."""

from __future__ import annotations

import numpy as np

from edgemed.core.errors import DataError
from edgemed.train.data.dataset import Dataset

DEFAULT_VAL_FRACTION = 0.2


def group_split(ds: Dataset, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0,
                val_groups: list[str] | None = None, tries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation samples.

    With `val_groups` the split is exactly those groups. Otherwise groups are drawn at random (seeded)
    until the validation side holds about `val_fraction` of the samples; of `tries` such draws the one
    whose validation side covers the most classes (then the closest fraction) wins, so that rare
    classes are measured whenever the data allow it.
    """
    groups = ds.groups.astype(str)
    unique = np.unique(groups)
    if val_groups:
        unknown = sorted(set(val_groups) - set(unique))
        if unknown:
            raise DataError(f"validation group(s) {unknown} not in the data; groups are {list(unique)[:20]}")
        val_mask = np.isin(groups, val_groups)
        return _checked(np.flatnonzero(~val_mask), np.flatnonzero(val_mask))
    if len(unique) < 2:
        raise DataError(f"{ds.source}: one group only ({unique[0]}); a patient-wise split needs two or more")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    sizes = {g: int(c) for g, c in zip(*np.unique(groups, return_counts=True), strict=True)}
    classes_of = {g: set(np.unique(ds.y[groups == g]).tolist()) for g in unique} if len(unique) <= 500 else None
    target = val_fraction * len(groups)
    best, best_key = None, None
    for _ in range(tries if classes_of is not None else 1):
        order = rng.permutation(unique)
        chosen, count = [], 0
        for g in order[:-1]:
            if count >= target:
                break
            chosen.append(g)
            count += sizes[g]
        val_classes = set().union(*(classes_of[g] for g in chosen)) if classes_of else set()
        train_classes = set().union(*(classes_of[g] for g in unique if g not in chosen)) if classes_of else set()
        key = (len(val_classes & train_classes), -abs(count - target))
        if best_key is None or key > best_key:
            best, best_key = chosen, key
    val_mask = np.isin(groups, best)
    return _checked(np.flatnonzero(~val_mask), np.flatnonzero(val_mask))


def _checked(train_idx: np.ndarray, val_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError("the split left no training or no validation samples; change the validation groups")
    return train_idx, val_idx
