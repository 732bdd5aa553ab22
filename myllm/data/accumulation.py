"""Gradient accumulation: one optimizer step over a global batch taken in micro-batches.

The sampler's batch (this rank's share of it under data parallelism) is split by rows, the way
data-parallel shards are, so an accumulated run sees exactly the windows of an unaccumulated one.
Each micro-batch's mean loss is weighted by its share of the rows: the summed gradients are then
the whole batch's mean-loss gradient even when the micro-batches are unequal (a short last batch
of an epoch).
"""

from __future__ import annotations

import numpy as np


def micro_batches(
    x: np.ndarray, y: np.ndarray, steps: int
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(x, y, weight) for each non-empty piece of `steps` row-wise pieces; weights sum to 1."""
    rows = len(x)
    pieces = zip(np.array_split(x, steps), np.array_split(y, steps), strict=True)
    return [(xs, ys, len(xs) / rows) for xs, ys in pieces if len(xs) > 0]
