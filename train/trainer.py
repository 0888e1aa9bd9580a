"""The training loop: AdamW, one-cycle schedule, gradient clipping, class weights and early stopping."""

from __future__ import annotations

import copy
import dataclasses
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
from edgemed.core.spec import Calibration
from edgemed.train.data.dataset import Dataset
from edgemed.train.distributed import World, world
from edgemed.train.distributed import start as start_world
from edgemed.train.predict import calibrate, model_inputs, predict_proba


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
        raise EdgemedError("`accelerator` cuda was asked for but no CUDA GPU is available; use `accelerator` cpu")
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


def _val_probs(model: nn.Module, val_ds: Dataset, device: torch.device, w: World) -> np.ndarray:
    """Validation probabilities, each rank predicting its share and all gathering the whole."""
    idx = w.shard(np.arange(len(val_ds)))
    return w.gather(predict_proba(model, val_ds.subset(idx), device=device), len(val_ds))


@dataclass
class _Loop:
    """What one training run holds between epochs."""

    model: nn.Module  # the module trained (DistributedDataParallel under torchrun)
    module: nn.Module  # the family's own module
    device: torch.device
    world: World
    opt: torch.optim.Optimizer
    sched: Any
    loss_fn: Any
    weights: torch.Tensor
    batch_size: int
    steps: int
    augment: bool
    rng: np.random.Generator
    aug_gen: torch.Generator


def _setup(model: nn.Module, train_ds: Dataset, cfg: TrainConfig) -> _Loop:
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
    return _Loop(model, module, device, w, opt, sched, loss_function(cfg.loss, weights), weights, batch_size, steps,
                 augment, rng, torch.Generator().manual_seed(cfg.seed + w.rank))


def _train_epoch(loop: _Loop, train_ds: Dataset, epoch: int, cfg: TrainConfig) -> float:
    """One epoch over this rank's share; the mean training loss across ranks."""
    loop.model.train()
    order = loop.world.shard(epoch_order(train_ds.y, cfg.sampling, loop.rng))
    losses = []
    bar = tqdm(range(loop.steps), desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
               disable=not cfg.progress or not loop.world.is_main or None)
    for step in bar:
        idx = order[step * loop.batch_size : (step + 1) * loop.batch_size]
        if len(idx) < 2 and step > 0:
            break  # batch norm cannot train on a batch of one; the order changes every epoch
        y = torch.from_numpy(train_ds.y[idx]).to(loop.device)
        inputs = model_inputs(loop.module, train_ds, idx, loop.device)
        if loop.augment:
            inputs = (loop.module.augment(inputs[0], loop.aug_gen), *inputs[1:])
        loss = loop.loss_fn(loop.model(*inputs), y)
        loop.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(loop.model.parameters(), cfg.grad_clip)
        loop.opt.step()
        loop.sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    return loop.world.mean(float(np.mean(losses)))


def _validate(loop: _Loop, val_ds: Dataset) -> tuple[dict[str, Any], float]:
    """The validation report and the class-weighted validation loss."""
    probs = _val_probs(loop.module, val_ds, loop.device, loop.world)
    report = classification_report(val_ds.y, probs, val_ds.labels)
    val_loss = float(nn.functional.cross_entropy(
        torch.log(torch.from_numpy(probs).clamp_min(1e-12)), torch.from_numpy(val_ds.y), weight=loop.weights.cpu()
    ))
    return report, val_loss


def train(model: nn.Module, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig) -> TrainResult:
    """Train `model` in place and return it with the weights of its best validation epoch (early stopping on
    `cfg.monitor`), then calibrated. Under torchrun the processes train one model together
    (DistributedDataParallel; see `edgemed.train.distributed`). An ensemble (`Traits.members`) trains each member
    on its own (seed + its index) and calibrates it, so that the members' probabilities are averaged on one
    scale, then grows its other parts (`finish_members`), then is validated and calibrated whole."""
    if model.traits.members:
        return _train_members(model, train_ds, val_ds, cfg)
    loop = _setup(model, train_ds, cfg)
    w, module = loop.world, loop.module
    result = TrainResult(model=module, device=str(loop.device) + (f" x {w.size} processes" if w.active else ""))
    best_score, best_state, stale = -np.inf, None, 0
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        train_loss = _train_epoch(loop, train_ds, epoch, cfg)
        train_seconds = time.perf_counter() - start
        report, val_loss = _validate(loop, val_ds)
        score = report[cfg.monitor] if report[cfg.monitor] is not None else -np.inf
        result.history.append({
            "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
            "val_macro_f1": report["macro_f1"], "val_accuracy": report["accuracy"],
            "lr": loop.sched.get_last_lr()[0], "seconds": train_seconds,
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
        result.calibration = calibrate(module, val_ds, cfg.abstain_below, loop.device)
    module.to("cpu").eval()
    return result


def _train_members(model: nn.Module, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig) -> TrainResult:
    history, best = [], []
    for k, member in enumerate(model.members):
        member_cfg = dataclasses.replace(cfg, seed=cfg.seed + k, abstain_below=None)
        result = train(member, train_ds, val_ds, member_cfg)
        history += [{**h, "member": k} for h in result.history]
        best.append(result.best_epoch)
    model.finish_members(train_ds, cfg.seed)
    device = resolve_accelerator(cfg.accelerator)
    model.to(device)
    report = classification_report(val_ds.y, predict_proba(model, val_ds, device=device), val_ds.labels)
    out = TrainResult(model=model, history=history, best_epoch=max(best), val_report=report, device=str(device))
    if cfg.calibrate:
        out.calibration = calibrate(model, val_ds, cfg.abstain_below, device)
    model.to("cpu").eval()
    return out
