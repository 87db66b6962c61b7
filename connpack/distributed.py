"""Data-parallel training on torch.distributed: ``torchrun --nproc_per_node N -m connpack train ...``.

torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; ``Context.from_env`` reads them and ``init`` joins the process
group (NCCL on GPUs, gloo on CPU). Every rank builds the same network (connpack.rng) and walks the same
global batches (connpack.data.batches); ``shard`` gives each rank a contiguous slice of each global batch.
Only rank 0 writes files and prints.

Why DDP masks can differ from a single process's in the last bits: the single process sums the per-example
gradients of a batch in one reduction, DDP sums each rank's slice and then adds the slices (all-reduce).
Float addition is not associative, so the summed gradients may differ by an ulp or so; a score that lands
within that distance of its threshold (0 for prune/flip, the k-th largest |score| for edge-popup) can end
on the other side. tests/test_distributed.py measures how close the two stay.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from connpack.errors import SpecError


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls) -> "Context":
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError:
            raise SpecError("WORLD_SIZE, RANK and LOCAL_RANK must be integers") from None
        if world < 1 or not 0 <= rank < world:
            raise SpecError(f"bad distributed environment: RANK={rank}, WORLD_SIZE={world}")
        return cls(rank, world, local)

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch of indices."""
        if not self.enabled:
            return idx
        return idx.tensor_split(self.world)[self.rank]

    def slice_bounds(self, n: int) -> tuple[int, int]:
        """[lo, hi) of this rank's part of n items (evaluation)."""
        if not self.enabled:
            return 0, n
        return n * self.rank // self.world, n * (self.rank + 1) // self.world

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            t = t.clone()
            torch.distributed.all_reduce(t)
        return t


def init(ctx: Context, device: torch.device) -> torch.device:
    """Join the process group; returns this rank's device (cuda:LOCAL_RANK on GPUs)."""
    if not ctx.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(model: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """The module that runs the forward pass: DDP over ``model`` when distributed, else ``model`` itself.

    The fixed weights are buffers that every rank generates identically, so buffers are not broadcast at
    each step; on GPUs batch norm becomes SyncBatchNorm so its batch statistics are those of the global batch.
    """
    if not ctx.enabled or not any(p.requires_grad for p in model.parameters()):
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


def shutdown(ctx: Context) -> None:
    if ctx.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
