"""How one rank's batch is cut for a training step and an evaluation (myllm/data/accumulation.py).

Both backends step on exactly these pieces, so what a user relies on (every window seen once,
weights that make the summed gradient the batch mean's) is checked here, framework-free."""

from __future__ import annotations

import numpy as np
import pytest

from myllm.data.accumulation import BatchShares, evaluation_shards, step_batches


def windows(rows: int, block_size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(rows * block_size, dtype=np.int64).reshape(rows, block_size)
    return x, x + 1


@pytest.mark.parametrize("rows", [1, 2, 5, 7, 16])
@pytest.mark.parametrize("accum_steps", [1, 2, 3, 4, 8, 20])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_step_batches_cover_the_shard_once_with_weights_summing_to_one(
    rows, accum_steps, world_size
):
    x, y = windows(rows)
    pieces = step_batches(x, y, accum_steps, world_size)
    np.testing.assert_array_equal(np.concatenate([px for px, _, _ in pieces]), x)
    np.testing.assert_array_equal(np.concatenate([py for _, py, _ in pieces]), y)
    assert all(len(px) > 0 for px, _, _ in pieces)  # no empty micro-batch is ever stepped
    if accum_steps == 1:
        assert [w for _, _, w in pieces] == [None]  # the whole shard, unweighted
    else:
        assert len(pieces) == min(rows, accum_steps)
        assert sum(w for _, _, w in pieces) == pytest.approx(1.0, abs=1e-12)
        assert all(w == len(px) / rows for px, _, w in pieces)


@pytest.mark.parametrize("accum_steps", [1, 4])
def test_an_empty_data_parallel_shard_steps_on_one_zero_window(accum_steps):
    """Fewer windows than ranks: the rank must still join the all-reduce (its share weighs 0)."""
    x, y = windows(0, block_size=5)
    pieces = step_batches(x, y, accum_steps, world_size=2)
    assert len(pieces) == 1
    px, py, _ = pieces[0]
    assert px.shape == (1, 5) and py.shape == (1, 5) and px.dtype == x.dtype
    assert not px.any() and not py.any()


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 7, 10])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_evaluate_every_window_once(batch_rows, world_size):
    batches = [windows(batch_rows), windows(batch_rows, block_size=2)]
    for index, (x, y) in enumerate(batches):
        shards = [list(evaluation_shards([(x, y)], rank, world_size)) for rank in range(world_size)]
        seen = [shard for rank_shards in shards for shard in rank_shards]
        assert all(len(sx) > 0 for sx, _ in seen), f"batch {index}: an empty shard is evaluated"
        np.testing.assert_array_equal(np.concatenate([sx for sx, _ in seen]), x)
        np.testing.assert_array_equal(np.concatenate([sy for _, sy in seen]), y)


def test_batch_shares_are_made_once_per_size_unless_the_batch_size_is_unknown():
    made = []

    def make(shard_rows, batch_rows):
        made.append((shard_rows, batch_rows))
        return object()

    shares = BatchShares(make)
    first = shares(4, 7)
    assert shares(4, 7) is first and shares(3, 7) is not first
    assert shares(4, None) is not shares(4, None)  # an all-reduce each time: sizes may change
    assert made == [(4, 7), (3, 7), (4, None), (4, None)]
