"""Data parallelism for the MLX backend: mx.distributed under `mlx.launch`.

Every rank holds the whole model and steps on its shard of the global batch. The shard's loss is
weighted by its share of the global batch, so the averaged gradient and the logged loss are the
global batch's, exactly as one process would compute them, even when shards are uneven.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_map


def init_distributed(device: mx.Device) -> tuple[int, int]:
    """(rank, world_size): from mlx.launch's environment, else (0, 1) (a group of one)."""
    world = mx.distributed.init()
    return world.rank(), world.size()


def finish_together() -> None:
    """Wait for every rank: rank 0 writes files and a sample after the last step.

    MLX has no barrier and no process group to destroy; a one-element all-sum is the barrier.
    """
    mx.eval(all_reduce_sum(mx.array(0.0)))


def rank_device(device: mx.Device) -> mx.Device:
    """The device as it is: MLX has no device index, each process uses its default device."""
    return device


def average_gradients(grads, share: mx.array, world_size: int):
    """Gradients weighted by this rank's `share` and summed across ranks (one fused all-sum).

    MLX only: torch's DDP wrapper does this during backward.
    """
    return nn.average_gradients(tree_map(lambda grad: grad * (share * world_size), grads))


def batch_share(shard_size: int, batch_size: int | None) -> mx.array:
    """This rank's share of the global batch, shard_size / batch_size (lazy).

    batch_size None: the sum of all ranks' shard sizes, found by an all-reduce.
    """
    size = mx.array(float(shard_size))
    if batch_size is None:
        return size / all_reduce_sum(size)
    return size / mx.array(float(batch_size))


def all_reduce_max(value: mx.array) -> mx.array:
    """The largest `value` over all ranks (on every rank)."""
    return mx.distributed.all_max(value)


def all_reduce_sum(value: mx.array) -> mx.array:
    """The sum of `value` over all ranks (on every rank)."""
    return mx.distributed.all_sum(value)
