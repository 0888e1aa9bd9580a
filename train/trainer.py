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

from edgemed.core.calibration import coverage, expected_calibration_error, fit_temperature, softmax
from edgemed.core.errors import EdgemedError
from edgemed.core.metrics import classification_report
from edgemed.core.spec import Calibration
from edgemed.train.data.dataset import Dataset
from edgemed.train.distributed import World, world
from edgemed.train.distributed import start as start_world


class ClassWeighting(enum.Enum):
    """How the loss weighs classes: `sqrt` (default) tempers inverse frequency, so that a class of 8
    examples among 40,000 does not dominate the gradient."""

    NONE = "none"
    INVERSE = "inverse"
    SQRT = "sqrt"
    CAPPED = "capped"  # inverse frequency, but no class weighs more than CAP_WEIGHT times the commonest


CAP_WEIGHT = 20.0


class Loss(enum.Enum):
    """`cross_entropy`, or `focal` (cross-entropy scaled by (1 - p)^2: easy, confident examples count less)."""

    CROSS_ENTROPY = "cross_entropy"
    FOCAL = "focal"


class Sampling(enum.Enum):
    """`shuffle` (every sample once per epoch) or `balanced` (each draw picks a class uniformly, then a sample of
    it: rare classes are seen as often as common ones, their samples repeated)."""

    SHUFFLE = "shuffle"
    BALANCED = "balanced"


FOCAL_GAMMA = 2.0


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
    loss: Loss = Loss.CROSS_ENTROPY
    sampling: Sampling = Sampling.SHUFFLE
    calibrate: bool = True  # fit a temperature on the validation data after training
    abstain_below: float | None = None  # report "uncertain" below this calibrated top probability
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
    calibration: Calibration | None = None


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
    elif mode is ClassWeighting.CAPPED:
        w = np.minimum(w, CAP_WEIGHT)
    w = w / w[counts > 0].mean()
    return torch.tensor(w, dtype=torch.float32)


def _inputs(model: nn.Module, ds: Dataset, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
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
                               "train on beat data (a WFDB folder with --task beats, or synthetic-beats)")
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
        out.append(model(*_inputs(model, ds, idx, device)).float().cpu().numpy())
    return np.concatenate(out)


def predict_proba(model: nn.Module, ds: Dataset, batch_size: int = 256, device: str | torch.device = "cpu"):
    """Softmax probabilities [n, classes] of `model` on all of `ds`, in eval mode."""
    return softmax(predict_logits(model, ds, batch_size, device)).astype(np.float32)


def epoch_order(y: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> np.ndarray:
    """Sample indices for one epoch (as many as there are samples)."""
    if sampling is Sampling.SHUFFLE:
        return rng.permutation(len(y))
    classes = [np.flatnonzero(y == c) for c in np.unique(y)]
    picks = rng.integers(0, len(classes), len(y))
    return np.concatenate([rng.choice(classes[c], int((picks == c).sum())) for c in range(len(classes))])[
        rng.permutation(len(y))]


def loss_function(loss: Loss, weights: torch.Tensor):
    """(logits, targets) -> scalar loss, class-weighted."""
    if loss is Loss.CROSS_ENTROPY:
        return nn.CrossEntropyLoss(weight=weights)

    def focal(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
        w = weights[y]
        return (-w * (1 - log_p.exp()) ** FOCAL_GAMMA * log_p).sum() / w.sum()

    return focal


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


def _val_probs(model: nn.Module, val_ds: Dataset, device: torch.device, w: World) -> np.ndarray:
    """Validation probabilities, each rank predicting its share and all gathering the whole."""
    idx = w.shard(np.arange(len(val_ds)))
    return w.gather(predict_proba(model, val_ds.subset(idx), device=device), len(val_ds))


def train(model: nn.Module, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig) -> TrainResult:
    """Train `model` in place and return it with the weights of its best validation epoch. Under torchrun the
    processes train one model together (DistributedDataParallel; see `edgemed.train.distributed`)."""
    seed_everything(cfg.seed)
    device = resolve_accelerator(cfg.accelerator)
    w = world()
    if w.active and device.type == "cuda":
        device = torch.device("cuda", w.local_rank)
    start_world(w, device)
    augment = cfg.augment if cfg.augment is not None else model.traits.augments_by_default
    model.to(device)
    module = model
    if w.active:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(module, device_ids=[w.local_rank] if device.type == "cuda" else None)
    rng = np.random.default_rng(cfg.seed)
    batch_size = max(cfg.batch_size // w.size, 2)  # each rank's share of the global batch
    steps = -(-len(w.shard(np.arange(len(train_ds)))) // batch_size)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps * cfg.epochs, pct_start=0.2)
    weights = class_weights(train_ds.y, len(train_ds.labels), cfg.class_weighting).to(device)
    loss_fn = loss_function(cfg.loss, weights)
    result = TrainResult(model=module, device=str(device) + (f" x {w.size} processes" if w.active else ""))
    aug_gen = torch.Generator().manual_seed(cfg.seed + w.rank)
    best_score, best_state, stale = -np.inf, None, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = w.shard(epoch_order(train_ds.y, cfg.sampling, rng))
        losses = []
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   disable=not cfg.progress or not w.is_main or None)
        for step in bar:
            idx = order[step * batch_size : (step + 1) * batch_size]
            if len(idx) < 2 and step > 0:
                break  # batch norm cannot train on a batch of one; the order changes every epoch
            y = torch.from_numpy(train_ds.y[idx]).to(device)
            inputs = _inputs(module, train_ds, idx, device)
            if augment:
                inputs = (module.augment(inputs[0], aug_gen), *inputs[1:])
            loss = loss_fn(model(*inputs), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        train_seconds = time.perf_counter() - start
        train_loss = w.mean(float(np.mean(losses)))
        probs = _val_probs(module, val_ds, device, w)
        report = classification_report(val_ds.y, probs, val_ds.labels)
        val_loss = float(nn.functional.cross_entropy(
            torch.log(torch.from_numpy(probs).clamp_min(1e-12)), torch.from_numpy(val_ds.y), weight=weights.cpu()
        ))
        score = report[cfg.monitor] if report[cfg.monitor] is not None else -np.inf
        result.history.append({
            "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
            "val_macro_f1": report["macro_f1"], "val_accuracy": report["accuracy"],
            "lr": sched.get_last_lr()[0], "seconds": train_seconds,
        })
        if cfg.progress and w.is_main:
            tqdm.write(f"epoch {epoch}: train loss {train_loss:.4f}  val loss {val_loss:.4f}  "
                       f"val {cfg.monitor} {score:.4f}  ({train_seconds:.1f} s)")
        if score > best_score:
            best_score, best_state, stale = score, copy.deepcopy(module.state_dict()), 0
            result.best_epoch, result.val_report = epoch, report
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    module.load_state_dict(best_state)
    if cfg.calibrate:
        result.calibration = calibrate(module, val_ds, cfg.abstain_below, device)
    module.to("cpu").eval()
    return result
