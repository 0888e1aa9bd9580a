"""Data-parallel training across processes (torchrun): who this process is, how the data are split and how
results are combined. One process (no torchrun) is the same code with a world of one.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `start` joins the process group (gloo on CPU, NCCL on CUDA). Each
epoch every rank draws the same order (same seed) and takes every world-size-th sample of it, as
`DistributedSampler` does after `set_epoch`; each rank's batch is the global batch over the world size, so one seed
and one world size give one result. Validation is split the same way and the predictions gathered, so every rank
sees the same metrics and takes the same early-stopping decision; only rank 0 writes the run folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as torch_dist

from edgemed.core.errors import EdgemedError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's part of an epoch's order, padded (by wrapping) so every rank gets as many samples."""
        if not self.active:
            return order
        total = -(-len(order) // self.size) * self.size
        padded = np.concatenate([order, order[: total - len(order)]]) if total > len(order) else order
        return padded[self.rank :: self.size]

    def mean(self, value: float) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch_dist.all_reduce(t)
        return float(t.item() / self.size)

    def gather(self, rows: np.ndarray, total: int) -> np.ndarray:
        """Rows computed on `shard(arange(total))` by every rank, put back in order (padding dropped)."""
        if not self.active:
            return rows
        parts: list[np.ndarray | None] = [None] * self.size
        torch_dist.all_gather_object(parts, rows)
        out = np.empty((-(-total // self.size) * self.size, *rows.shape[1:]), dtype=rows.dtype)
        for r, part in enumerate(parts):
            out[r :: self.size] = part
        return out[:total]

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()


def world() -> World:
    """This process's place, from torchrun's environment (a world of one without it)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise EdgemedError(f"torchrun's RANK/WORLD_SIZE/LOCAL_RANK are not numbers: {exc}") from exc
    return World(rank, size, local)


def start(w: World, device: torch.device) -> None:
    """Join the process group (once): gloo on CPU, NCCL on CUDA."""
    if not w.active or torch_dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(w.local_rank)
    torch_dist.init_process_group(backend=backend, rank=w.rank, world_size=w.size)


def stop(w: World) -> None:
    if w.active and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
