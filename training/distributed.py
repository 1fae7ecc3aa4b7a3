"""Data-parallel plumbing for the trainer: one code path for a single CPU process and `torchrun` on many devices.

Under `torchrun` (env RANK / WORLD_SIZE / LOCAL_RANK set) `init_distributed` starts the process group: gloo on
CPU, nccl on CUDA. Gradients are averaged over ranks after each optimizer step's accumulation (the DDP contract,
done explicitly so any task — SFT, GRPO — works without a module wrapper), and losses that need the whole
global batch (in-batch negatives) gather embeddings with `gather_with_grad` (open_clip's `gather_features`):
the gathered loss equals the single-process loss on the same global batch, and with gradient averaging the
gradients match too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    """rank / world_size / local_rank of this process; device its tensors live on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else a single-process DistInfo.

    backend: None = nccl when CUDA is available, else gloo. Idempotent.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and backend != "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_with_grad(x: Tensor) -> Tensor:
    """(b, ...) per rank -> (world_size * b, ...) in rank order, differentiable (torch.distributed.nn.all_gather).
    Identity in a single process. Every rank must pass the same b."""
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


def gather_dict_with_grad(local: dict[str, Tensor]) -> dict[str, Tensor]:
    """name -> (b_name, ..., D) per rank -> name -> (W * b_name, ..., D) in rank order, in ONE differentiable
    collective (several autograd collectives could run their backward in a different order on different
    ranks). Every tensor shares the last dim D; every rank passes the same names and shapes."""
    if not local:
        return {}
    names = list(local)
    D = local[names[0]].shape[-1]
    flat = [local[n].reshape(-1, D) for n in names]
    sizes = [f.shape[0] for f in flat]
    gathered = gather_with_grad(torch.cat(flat))  # (W * rows, D)
    world = gathered.shape[0] // sum(sizes)
    per_rank = gathered.reshape(world, sum(sizes), D)  # (W, rows, D)
    out, offset = {}, 0
    for n, size in zip(names, sizes):
        part = per_rank[:, offset : offset + size]  # (W, size, D)
        out[n] = part.reshape(world * local[n].shape[0], *local[n].shape[1:])
        offset += size
    return out


def gather_no_grad(x: Tensor) -> Tensor:
    """Like gather_with_grad for tensors that carry no gradient (ids, masks, teacher similarities)."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def average_gradients(parameters) -> None:
    """All-reduce every parameter's .grad to the mean over ranks (no-op in a single process)."""
    n = world_size()
    if n == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(n)


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op in a single process)."""
    if world_size() == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)
