"""One rank's batch as the micro-batches a training step runs, and its share of the global batch.

Both trainers step and evaluate on what this module cuts, so the cutting is written once: the
backends only turn the numpy pieces into tensors and the share into a device scalar.

Gradient accumulation: the sampler's batch (this rank's share of it under data parallelism) is
split by rows, the way data-parallel shards are, so an accumulated run sees exactly the windows of
an unaccumulated one. Each micro-batch's mean loss is weighted by its share of the rows: the summed
gradients are then the whole batch's mean-loss gradient even when the micro-batches are unequal (a
short last batch of an epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

import numpy as np

from myllm.data.sampler import shard_rows

Share = TypeVar("Share")


def micro_batches(
    x: np.ndarray, y: np.ndarray, steps: int
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(x, y, weight) for each non-empty piece of `steps` row-wise pieces; weights sum to 1."""
    rows = len(x)
    pieces = zip(np.array_split(x, steps), np.array_split(y, steps), strict=True)
    return [(xs, ys, len(xs) / rows) for xs, ys in pieces if len(xs) > 0]


def step_batches(
    x: np.ndarray, y: np.ndarray, grad_accum_steps: int, world_size: int
) -> list[tuple[np.ndarray, np.ndarray, float | None]]:
    """The micro-batches [(x, y, weight)] one optimizer step runs on this rank's shard x, y.

    weight None: the one micro-batch is the whole shard. A data-parallel rank whose shard is empty
    (fewer windows than ranks) still steps, on one zero window: every rank must join the gradient
    all-reduce, and the window weighs nothing because the rank's batch share is 0.
    """
    if world_size > 1 and len(x) == 0:
        x, y = np.zeros((1, x.shape[1]), x.dtype), np.zeros((1, y.shape[1]), y.dtype)
    if grad_accum_steps > 1:
        return micro_batches(x, y, grad_accum_steps)
    return [(x, y, None)]


def evaluation_shards(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], rank: int, world_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """This rank's non-empty row shard of each validation batch: the ranks split every batch, so
    each window is evaluated once, and their summed (loss * rows, rows) give the mean."""
    for x, y in batches:
        x, y = shard_rows(x, rank, world_size), shard_rows(y, rank, world_size)
        if len(x) > 0:
            yield x, y


class BatchShares(Generic[Share]):
    """This rank's share of the global batch, made once per (shard, batch) size.

    Made per step it would cost a host-to-device copy (which waits for a GPU's queue) and an
    all-reduce; the loop knows the global batch size, so neither is needed after the first.
    `make(shard_rows, batch_rows)` is the backend's; batch_rows None asks it for an all-reduce of
    the shard sizes, which can differ between steps, so that one is never cached.
    """

    def __init__(self, make: Callable[[int, int | None], Share]):
        self.make = make
        self.shares: dict[tuple[int, int], Share] = {}

    def __call__(self, shard_rows: int, batch_rows: int | None) -> Share:
        if batch_rows is None:
            return self.make(shard_rows, None)
        key = (shard_rows, batch_rows)
        if key not in self.shares:
            self.shares[key] = self.make(shard_rows, batch_rows)
        return self.shares[key]
