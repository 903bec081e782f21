"""Data-parallel training on ``torch.distributed`` (docs/design.md, "Data-parallel training").

N processes (``torchrun``; gloo on CPU, NCCL on CUDA, one GPU per local rank) each step their
own envs into their own buffer and sample their own batch; every update averages every
gradient across the ranks before its optimizer steps: log_alpha's on its own (the new alpha is
used later in the same update), then all the networks' in one flat all-reduce. With N ranks of
batch B an update is the update of one process on the union of the N batches, and the
parameters stay equal on every rank, bit for bit (an all-reduce hands every rank the same sum).

FastSAC's compiled update calls the functional collectives, which ``torch.compile`` traces into
its graph; the eager reference all-reduces each ``.grad`` before each ``optimizer.step()``.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# Seconds a collective waits for the other ranks before it fails (a rank that died or hangs):
# the job ends with an error instead of hanging. FASTSAC_DIST_TIMEOUT overrides it.
DEFAULT_TIMEOUT_S = 300


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int


def current_world() -> World | None:
    """The process group this process belongs to, when there is one of more than one rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return World(dist.get_rank(), dist.get_world_size(),
                 int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout_seconds() -> float:
    return float(os.environ.get("FASTSAC_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))


def init_from_env(device: str | None) -> World:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT): gloo on
    CPU, NCCL on CUDA with this rank's local GPU, collectives failing after
    ``timeout_seconds()``."""
    cuda = device == "cuda" or (device in (None, "auto") and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_seconds()))
    world = current_world()
    if world is None:
        raise RuntimeError("torch.distributed has a world of one process")
    return world


def average(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of ``tensor`` over the ranks, as a functional collective (``torch.compile``
    traces it into the graph; eagerly it waits where the result is used)."""
    from torch.distributed import _functional_collectives as funcol

    return funcol.all_reduce(tensor, "sum", dist.group.WORLD) / world_size


def average_flat(tensors: list[torch.Tensor], world_size: int) -> list[torch.Tensor]:
    """The mean over the ranks of every tensor of ``tensors``, in one all-reduce of their
    concatenation (one collective per update instead of one per tensor)."""
    flat = average(torch.cat([t.reshape(-1) for t in tensors]), world_size)
    return [part.view_as(t) for part, t in
            zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)]


def broadcast_(tensors: list[torch.Tensor]) -> None:
    """Rank 0's values into every rank's ``tensors`` (the starting weights and Adam state)."""
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data if isinstance(t, torch.nn.Parameter) else t, src=0)


def gather_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Every rank's ``rows`` on rank 0 (a list of all of them; None on other ranks)."""
    world = current_world()
    assert world is not None
    gathered: list[Any] | None = [None] * world.size if world.rank == 0 else None
    dist.gather_object(rows, gathered, dst=0)
    if gathered is None:
        return None
    return [row for part in gathered for row in part]


def barrier() -> None:
    dist.barrier()
