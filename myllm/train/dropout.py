"""Counter-based dropout: each mask element is a keyed integer hash of where it is, not a draw.

A stateful generator (torch's mt19937, MLX's threefry stream) gives each framework its own masks,
so a torch run and an MLX run of the same seed part at the first step. Here an element's keep bit
is a hash of (seed, optimizer step, global row, dropout site, element index), in the spirit of
Philox / threefry, written with 32-bit integer ops that torch and MLX both have, so the two
frameworks draw bit-identical masks. Three consequences follow without any saved state:
a resumed run draws the masks it would have drawn (the step is in the key); data-parallel ranks
and the micro-batches of gradient accumulation draw the masks of the single-process,
unaccumulated step (the row in the key is the row of the global batch).

How: the host (numpy, here) turns (seed, step, row, site) into two 32-bit words per row and
site: `dropout_keys`. The device hashes each element's pair index with them (`keep_mask`: the
lowbias32 mixer, the second word injected between its rounds) and cuts the 32-bit hash into two
16-bit uniforms: one hash serves two elements, half of a site's elements take the high half, the
rest the low half. An element is kept when its uniform is at least `threshold` = round(p * 2^16),
so the drop rate is p within 2^-17. This numpy `keep_mask` is the reference the backends'
dropout.py translate (tests/train/test_dropout.py checks them bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIX_1 = 0x7FEB352D  # lowbias32's multipliers (Chris Wellons' hash prospector)
MIX_2 = 0x846CA68B
CHAIN_START = 0x9E3779B9  # 2^32 / golden ratio: the key chain's starting value
SIGN_BIT = 0x80000000
SITES_PER_BLOCK = 4  # attention weights, attention output, feed-forward hidden, feed-forward output
EMBEDDING_SITE = 0


@dataclass(frozen=True)
class DropoutRule:
    """Keep an element when its 16-bit uniform >= threshold; scale kept ones by `scale`.

    scale is 2^16 / (2^16 - threshold), the exact inverse of the keep rate, as a float32 value.
    """

    threshold: int
    scale: float

    @property
    def active(self) -> bool:
        return self.threshold > 0


def dropout_rule(p: float) -> DropoutRule:
    """The rule of dropout probability p (at most 65535 / 65536 dropped: a scale stays finite)."""
    threshold = min(round(p * 65536), 65535)
    return DropoutRule(threshold, float(np.float32(65536 / (65536 - threshold))))


def site_count(n_layers: int) -> int:
    """Dropout sites of the model: the embedding's, then four per block."""
    return 1 + SITES_PER_BLOCK * n_layers


def block_site(layer: int, which: int) -> int:
    """Site index of block `layer`'s dropout `which` (0 attention weights, 1 attention output,
    2 feed-forward hidden, 3 feed-forward output)."""
    return 1 + SITES_PER_BLOCK * layer + which


def lowbias32(h: np.ndarray) -> np.ndarray:
    """Chris Wellons' lowbias32 integer hash on uint32 (a bijection with low avalanche bias)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(MIX_1)
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(MIX_2)
    return h ^ (h >> np.uint32(16))


def dropout_keys(seed: int, step: int, first_row: int, rows: int, sites: int) -> np.ndarray:
    """Keys [rows, sites, 2] uint32 of global rows first_row.. at optimizer step `step`.

    Each word of (seed low, seed high, step, row, site, which key) is folded into a lowbias32
    chain, so every (row, site) gets two unrelated 32-bit words.
    """
    row = np.arange(first_row, first_row + rows, dtype=np.uint64).astype(np.uint32)
    words = [
        np.uint32(seed & 0xFFFFFFFF),
        np.uint32((seed >> 32) & 0xFFFFFFFF),
        np.uint32(step & 0xFFFFFFFF),
        row[:, None, None],
        np.arange(sites, dtype=np.uint32)[None, :, None],
        np.arange(2, dtype=np.uint32)[None, None, :],
    ]
    h = np.full((rows, sites, 2), CHAIN_START, dtype=np.uint32)
    for word in words:
        h = lowbias32(h ^ word)
    return h


def keep_mask(keys: np.ndarray, shape: tuple[int, ...], threshold: int) -> np.ndarray:
    """Boolean keep mask [rows, *shape] of one site, from its keys [rows, 2]: the reference.

    Element e of a row (C order over `shape`) of n elements uses pair index e for e < ceil(n/2),
    e - ceil(n/2) after: the high 16 bits of the pair's hash for the first half, the low after.
    """
    rows, size = keys.shape[0], int(np.prod(shape))
    pairs = (size + 1) // 2
    h = np.arange(pairs, dtype=np.uint32)[None, :] ^ keys[:, 0:1]  # [rows, pairs]
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(MIX_1)
    h = h ^ keys[:, 1:2]  # the second key word, between the rounds
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(MIX_2)
    # high: the hash's top 16 bits, offset by 2^15 so that a signed int32 compare reads them
    high = (h ^ np.uint32(SIGN_BIT)) >= np.uint32(threshold << 16)
    low = ((h ^ (h >> np.uint32(16))) & np.uint32(0xFFFF)) >= threshold  # lowbias32's last mix
    return np.concatenate([high, low], axis=1)[:, :size].reshape(rows, *shape)


def first_global_row(batch_rows: int, rank: int, world_size: int) -> int:
    """The global batch row where rank `rank`'s shard starts (np.array_split's pieces)."""
    base, extra = divmod(batch_rows, world_size)
    return rank * base + min(rank, extra)


def step_keys(
    seed: int, step: int, n_layers: int, micro_rows: list[int], shard: tuple[int, int, int]
) -> list[np.ndarray]:
    """Keys [rows, sites, 2] of each micro-batch of optimizer step `step` on one rank.

    shard is (global batch rows, rank, world size): the rank's shard starts at the global row
    first_global_row gives, and its micro-batches are cut from there in order, so every row
    gets the keys it has in the single-process, unaccumulated step.
    """
    first_row = first_global_row(*shard)
    starts = first_row + np.cumsum([0, *micro_rows[:-1]])
    sites = site_count(n_layers)
    return [
        dropout_keys(seed, step, int(start), rows, sites)
        for start, rows in zip(starts, micro_rows, strict=True)
    ]
