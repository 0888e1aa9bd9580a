"""The training loop: AdamW, one-cycle schedule, gradient clipping, class weights and early stopping."""

from __future__ import annotations

import copy
import enum
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgemed.core.errors import EdgemedError
from edgemed.core.metrics import classification_report
from edgemed.train.data.dataset import Dataset


class ClassWeighting(enum.Enum):
    """How the loss weighs classes: `sqrt` (default) tempers inverse frequency, so that a class of 8
    examples among 40,000 does not dominate the gradient."""

    NONE = "none"
    INVERSE = "inverse"
    SQRT = "sqrt"


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    patience: int = 5
    seed: int = 0
    accelerator: str = "auto"
    class_weighting: ClassWeighting = ClassWeighting.SQRT
    monitor: str = "macro_f1"
    max_steps_per_epoch: int | None = None
    augment: bool | None = None  # None: the family's default (on for images, off for signals)
    progress: bool = True


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    val_report: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def resolve_accelerator(name: str) -> torch.device:
    """Where PyTorch trains: `auto` (CUDA when present), `cpu` or `cuda`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgemedError("--accelerator cuda was asked for but no CUDA GPU is available; use --accelerator cpu")
    if name not in ("cpu", "cuda"):
        raise EdgemedError(f"unknown accelerator {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def class_weights(y: np.ndarray, num_classes: int, mode: ClassWeighting) -> torch.Tensor:
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    if mode is ClassWeighting.NONE:
        return torch.ones(num_classes)
    w = np.where(counts > 0, counts.max() / np.maximum(counts, 1), 0.0)
    if mode is ClassWeighting.SQRT:
        w = np.sqrt(w)
    w = w / w[counts > 0].mean()
    return torch.tensor(w, dtype=torch.float32)


def _inputs(ds: Dataset, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    x = torch.from_numpy(ds.X[idx]).to(device)
    if ds.lengths is None:
        return (x,)
    return x, torch.from_numpy(ds.lengths[idx]).to(device)


@torch.inference_mode()
def predict_proba(model: nn.Module, ds: Dataset, batch_size: int = 256, device: str | torch.device = "cpu"):
    """Softmax probabilities [n, classes] of `model` on all of `ds`, in eval mode."""
    model.eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(ds), batch_size):
        idx = np.arange(start, min(start + batch_size, len(ds)))
        out.append(torch.softmax(model(*_inputs(ds, idx, device)), dim=1).cpu().numpy())
    return np.concatenate(out)


def train(model: nn.Module, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig) -> TrainResult:
    """Train `model` in place and return it with the weights of its best validation epoch."""
    seed_everything(cfg.seed)
    device = resolve_accelerator(cfg.accelerator)
    augment = cfg.augment if cfg.augment is not None else model.traits.augments_by_default
    model.to(device)
    rng = np.random.default_rng(cfg.seed)
    steps = -(-len(train_ds) // cfg.batch_size)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps * cfg.epochs, pct_start=0.2)
    weights = class_weights(train_ds.y, len(train_ds.labels), cfg.class_weighting).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    result = TrainResult(model=model, device=str(device))
    aug_gen = torch.Generator().manual_seed(cfg.seed)
    best_score, best_state, stale = -np.inf, None, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = rng.permutation(len(train_ds))
        losses = []
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not cfg.progress or None)
        for step in bar:
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            if len(idx) == 0:
                break
            y = torch.from_numpy(train_ds.y[idx]).to(device)
            inputs = _inputs(train_ds, idx, device)
            if augment:
                inputs = (model.augment(inputs[0], aug_gen), *inputs[1:])
            loss = loss_fn(model(*inputs), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        train_seconds = time.perf_counter() - start
        probs = predict_proba(model, val_ds, device=device)
        report = classification_report(val_ds.y, probs, val_ds.labels)
        val_loss = float(nn.functional.cross_entropy(
            torch.log(torch.from_numpy(probs).clamp_min(1e-12)), torch.from_numpy(val_ds.y), weight=weights.cpu()
        ))
        score = report[cfg.monitor] if report[cfg.monitor] is not None else -np.inf
        result.history.append({
            "epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
            "val_macro_f1": report["macro_f1"], "val_accuracy": report["accuracy"],
            "lr": sched.get_last_lr()[0], "seconds": train_seconds,
        })
        if cfg.progress:
            tqdm.write(f"epoch {epoch}: train loss {np.mean(losses):.4f}  val loss {val_loss:.4f}  "
                       f"val {cfg.monitor} {score:.4f}  ({train_seconds:.1f} s)")
        if score > best_score:
            best_score, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            result.best_epoch, result.val_report = epoch, report
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    return result
