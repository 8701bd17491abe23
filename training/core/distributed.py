"""DDP under torchrun, and the same calls as no-ops in a plain single process.

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT; the process group rendezvous is
env://, gloo on CPU and NCCL on CUDA. Rank 0 alone logs and writes files; every rank takes part
in the collectives below, so they must be called on all ranks in the same order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False     # this process created the group, so it destroys it

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto") -> Context:
    """Join the torchrun process group if there is one; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    dev = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if world == 1:
        return Context(device=dev)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    return Context(dist.get_rank(), dist.get_world_size(), local, dev, owns)


def close(ctx: Context) -> None:
    """Destroy the process group if ``init`` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: Context) -> tuple[nn.Module, nn.Module]:
    """Return (module, model to train): the module in DDP when there are several ranks.

    On CUDA, BatchNorm becomes SyncBatchNorm, so its statistics are those of the global batch as
    in one process; PyTorch has no SyncBatchNorm on CPU, so under gloo each rank normalises its
    own share of the batch (the one place where N processes differ from one).
    """
    if ctx.world == 1:
        return model, model
    if ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, DistributedDataParallel(model, device_ids=[ctx.device.index])
    return model, DistributedDataParallel(model)


def all_sum(value: float, ctx: Context) -> float:
    """Sum a float over ranks (float64)."""
    if ctx.world == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item())


def all_mean(value: float, ctx: Context) -> float:
    """Average a float over ranks."""
    return all_sum(value, ctx) / ctx.world


def shard(items, ctx: Context) -> list:
    """Return this rank's share of ``items`` (every world-th one, starting at its rank)."""
    return list(items)[ctx.rank::ctx.world]


def gather_rows(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Concatenate each rank's rows [n_r, ...] (n_r may differ, even be 0) in rank order, on every rank."""
    if ctx.world == 1:
        return t
    t = t.to(ctx.device)
    sizes = [torch.zeros(1, dtype=torch.long, device=ctx.device) for _ in range(ctx.world)]
    dist.all_gather(sizes, torch.tensor([len(t)], device=ctx.device))
    sizes = [int(s.item()) for s in sizes]
    padded = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype, device=ctx.device)
    padded[:len(t)] = t
    parts = [torch.empty_like(padded) for _ in range(ctx.world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)]).cpu()


def barrier(ctx: Context) -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read)."""
    if ctx.world > 1:
        dist.barrier()
