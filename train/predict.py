"""A trained model's predictions on a dataset (its inputs by role: signal, lengths, context), and the temperature
calibration fitted on validation data."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgemed.core.calibration import coverage, expected_calibration_error, fit_temperature, softmax
from edgemed.core.errors import EdgemedError
from edgemed.core.spec import Calibration
from edgemed.train.data.dataset import Dataset


def model_inputs(model: nn.Module, ds: Dataset, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The model's inputs for samples `idx`, in its spec's order, found by role: the signal is X, lengths the
    dataset's lengths (left out when the data are not padded), context the dataset's array of that source."""
    out = []
    for t in model.spec.inputs:
        if t.role == "signal":
            arr = ds.X[idx]
        elif t.role == "lengths":
            if ds.lengths is None:
                continue
            arr = ds.lengths[idx]
        elif t.source in ds.context:
            arr = ds.context[t.source][idx]
        else:
            raise EdgemedError(f"{ds.source}: the model takes {t.name!r} ({t.source}), which this data lacks; "
                               "train on beat data (a WFDB folder with `task` beats, or synthetic-beats)")
        out.append(torch.from_numpy(np.ascontiguousarray(arr)).to(device))
    return tuple(out)


@torch.inference_mode()
def predict_logits(model: nn.Module, ds: Dataset, batch_size: int = 256, device: str | torch.device = "cpu",
                   ) -> np.ndarray:
    """Logits [n, classes] of `model` on all of `ds`, in eval mode."""
    model.eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(ds), batch_size):
        idx = np.arange(start, min(start + batch_size, len(ds)))
        out.append(model(*model_inputs(model, ds, idx, device)).float().cpu().numpy())
    return np.concatenate(out)


def predict_proba(model: nn.Module, ds: Dataset, batch_size: int = 256, device: str | torch.device = "cpu"):
    """Softmax probabilities [n, classes] of `model` on all of `ds`, in eval mode."""
    return softmax(predict_logits(model, ds, batch_size, device)).astype(np.float32)


def calibrate(model: nn.Module, val_ds: Dataset, abstain_below: float | None, device: torch.device) -> Calibration:
    """Fit the temperature on the validation data, store it in the model, and report ECE before and after."""
    logits = predict_logits(model, val_ds, device=device) * model.head.temperature
    temperature = fit_temperature(logits, val_ds.y)
    cal = Calibration(temperature=temperature, ece_before=expected_calibration_error(softmax(logits), val_ds.y),
                      ece_after=expected_calibration_error(softmax(logits / temperature), val_ds.y),
                      fitted_on=f"{len(val_ds)} validation samples from {len(set(val_ds.groups.tolist()))} groups",
                      abstain_below=abstain_below,
                      coverage=coverage(softmax(logits / temperature), abstain_below))
    model.set_calibration(cal)
    return cal
