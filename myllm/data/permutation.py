"""A seeded permutation of 0..n-1 computed one slice at a time, in memory independent of n.

The batch sampler shuffles an epoch's window starts with numpy's permutation, which holds 4 bytes
per window: fine for today's texts, 4 GB for a 1 GB text. Past a size, the sampler instead asks
this permutation for the slice a batch needs: a 4-round Feistel network (a bijection on 2^bits
values) with cycle walking (values >= n are encrypted again until they fall below n), so each
start is still visited exactly once per epoch, in an order fixed by (seed, epoch).
"""

from __future__ import annotations

import numpy as np

ROUNDS = 4
_MULTIPLIER_1 = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's finaliser constants
_MULTIPLIER_2 = np.uint64(0x94D049BB133111EB)


class FeistelPermutation:
    """permutation[i] for any index array i, a bijection of range(size) keyed by `key`."""

    def __init__(self, size: int, key: list[int]):
        if size < 1:
            raise ValueError(f"permutation size must be positive, got {size}")
        self.size = size
        bits = max(2, int(size - 1).bit_length())
        self.half_bits = np.uint64((bits + 1) // 2)
        self.mask = np.uint64((1 << int(self.half_bits)) - 1)
        self.round_keys = np.random.default_rng(key).integers(
            0, 2**63, size=ROUNDS, dtype=np.uint64
        )

    def _mix(self, values: np.ndarray, round_key: np.uint64) -> np.ndarray:
        mixed = values ^ round_key
        mixed = (mixed ^ (mixed >> np.uint64(30))) * _MULTIPLIER_1
        mixed = (mixed ^ (mixed >> np.uint64(27))) * _MULTIPLIER_2
        return (mixed ^ (mixed >> np.uint64(31))) & self.mask

    def _encrypt(self, values: np.ndarray) -> np.ndarray:
        left, right = values >> self.half_bits, values & self.mask
        for round_key in self.round_keys:
            left, right = right, left ^ self._mix(right, round_key)
        return (left << self.half_bits) | right

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        values = self._encrypt(np.asarray(indices, dtype=np.uint64))
        outside = values >= self.size
        while outside.any():  # cycle walking: the domain is under 4x size, so few rounds
            values[outside] = self._encrypt(values[outside])
            outside = values >= self.size
        return values.astype(np.int64)
