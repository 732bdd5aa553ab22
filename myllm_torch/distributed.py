"""Data parallelism for the torch backend: DDP under `torchrun`.

Every rank holds the whole model and steps on its shard of the global batch. The shard's loss is
weighted by its share of the global batch, so the averaged gradient and the logged loss are the
global batch's, exactly as one process would compute them, even when shards are uneven.
"""

from __future__ import annotations

import atexit
import inspect
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from myllm.errors import UserError


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world_size): from torchrun's WORLD_SIZE / RANK, else (0, 1) and nothing started."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if device.type not in ("cpu", "cuda"):
        raise UserError(
            f"distributed torch training runs on cpu (gloo) or cuda (nccl), not {device.type}: "
            "add --device cpu"
        )
    if not dist.is_initialized():
        binding = {}
        if device.type == "cuda" and accepts_device_id():  # binds the group to this rank's GPU
            binding["device_id"] = device
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", **binding)
        atexit.register(leave_process_group)  # error paths; a finished run calls finish_together
    return dist.get_rank(), dist.get_world_size()


def accepts_device_id() -> bool:
    """Whether this torch's init_process_group takes device_id (added around torch 2.2/2.3).

    Without it NCCL finds the GPU from torch.cuda.set_device, which rank_device has called."""
    return "device_id" in inspect.signature(dist.init_process_group).parameters


def finish_together() -> None:
    """Wait for every rank, then leave the process group, while Python is still fully alive.

    Rank 0 writes files and a sample after the last step. Without the barrier the other ranks
    exit first and gloo, torn down at interpreter exit, can abort them with "terminate called
    without an active exception" (seen once in CI).
    """
    dist.barrier()
    leave_process_group()


def leave_process_group() -> None:
    """Shut the process group down if it is still up (destroy_process_group raises otherwise)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun, cuda (or cuda:N, e.g. stored by another machine) means this process's own
    GPU, cuda:LOCAL_RANK: otherwise every rank would share one GPU."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` wrapped in DDP, which averages gradients across ranks during backward.

    torch only: MLX has no wrapper; its step calls average_gradients itself.
    """
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def batch_share(shard_size: int, batch_size: int | None, device: torch.device) -> torch.Tensor:
    """This rank's share of the global batch, shard_size / batch_size.

    batch_size None: the sum of all ranks' shard sizes, found by an all-reduce.
    """
    size = torch.tensor(float(shard_size), device=device)
    if batch_size is None:
        return size / all_reduce_sum(size.clone())
    return size / torch.tensor(float(batch_size), device=device)


def all_reduce_max(value: torch.Tensor) -> torch.Tensor:
    """The largest `value` over all ranks (on every rank)."""
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of `value` over all ranks (on every rank)."""
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value
