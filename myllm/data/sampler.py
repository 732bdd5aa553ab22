"""The deterministic batch sampler and the validation batches, over a Corpus's tokens.

The sampler is plain numpy and depends only on (seed, epoch, step), so both backends see the same
batches for the same seed, a resumed run sees the batches it would have seen, and data-parallel
ranks take disjoint shards of the same global batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from myllm.data.permutation import FeistelPermutation


def windows(
    tokens: np.ndarray, starts: np.ndarray, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """x = tokens[s : s+block_size], y = tokens[s+1 : s+block_size+1] for each start s."""
    offsets = np.arange(block_size + 1)
    # int32 whatever the storage (a memory-mapped cache holds uint8 / uint16 / uint32 tokens)
    window = np.asarray(tokens[starts[:, None] + offsets], dtype=np.int32)  # [B, block_size + 1]
    return window[:, :-1], window[:, 1:]


class BatchSampler:
    """Shuffled training batches: each epoch visits every window start once, in a seeded order.

    Like the reference's DataLoader(shuffle=True), the last batch of an epoch may be smaller.
    `rank` / `world_size` select a contiguous shard of each global batch for data parallelism.
    Up to EXACT_SHUFFLE_MAX_WINDOWS windows an epoch's order is numpy's permutation, held in
    memory (4 bytes a window); past it, a FeistelPermutation computed a batch at a time, so a
    1 GB text does not need 4 GB of order.
    """

    EXACT_SHUFFLE_MAX_WINDOWS = 1 << 27

    def __init__(
        self,
        tokens: np.ndarray,
        block_size: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_windows = len(tokens) - block_size
        self.steps_per_epoch = math.ceil(self.num_windows / batch_size)
        self._cached_epoch = -1
        self._order = np.empty(0, dtype=np.int32)
        self._permutation: FeistelPermutation | None = None

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The start indices of `epoch` in visiting order (a permutation of all starts)."""
        if epoch != self._cached_epoch:
            # rng.permutation(n) is arange(n) shuffled in place: int32 halves its memory and
            # gives the same order.
            self._order = np.arange(self.num_windows, dtype=np.int32)
            np.random.default_rng([self.seed, epoch]).shuffle(self._order)
            self._cached_epoch = epoch
        return self._order

    def batch_starts(self, epoch: int, first: int, stop: int) -> np.ndarray:
        """Positions first..stop-1 of `epoch`'s visiting order."""
        if self.num_windows <= self.EXACT_SHUFFLE_MAX_WINDOWS:
            return self.epoch_order(epoch)[first:stop]
        if self._permutation is None or epoch != self._cached_epoch:
            self._permutation = FeistelPermutation(self.num_windows, [self.seed, epoch, 0xFE15])
            self._cached_epoch = epoch
        return self._permutation[np.arange(first, min(stop, self.num_windows))]

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def rows_in_batch(self, step: int) -> int:
        """Windows in global step `step`'s whole batch, all ranks' shards together."""
        index = step % self.steps_per_epoch
        return min(self.batch_size, self.num_windows - index * self.batch_size)

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) of global step `step` for this rank: int32 arrays [B, block_size]."""
        index = step % self.steps_per_epoch
        starts = self.batch_starts(
            self.epoch_of(step), index * self.batch_size, (index + 1) * self.batch_size
        )
        return windows(self.tokens, shard_rows(starts, self.rank, self.world_size), self.block_size)


def shard_rows(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank `rank`'s contiguous piece of `rows` (np.array_split: sizes differ by at most one)."""
    return rows if world_size == 1 else np.array_split(rows, world_size)[rank]


def validation_batches(
    tokens: np.ndarray,
    block_size: int,
    batch_size: int,
    eval_iters: int | None,
    seed: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The validation batches used at every evaluation.

    eval_iters None: every validation window once, in order (the reference's full pass).
    Otherwise eval_iters batches of random windows, the same at every evaluation so that
    evaluations are comparable. Batches are made lazily: a full pass may be large.
    """
    num_windows = len(tokens) - block_size
    if eval_iters is None:
        for first in range(0, num_windows, batch_size):
            yield windows(
                tokens,
                np.arange(first, min(first + batch_size, num_windows)),
                block_size,
            )
    else:
        rng = np.random.default_rng([seed, 0xE7A1])
        for _ in range(eval_iters):
            yield windows(tokens, rng.integers(0, num_windows, size=batch_size), block_size)
