"""The sampler on a corpus too large to hold an epoch's order: a permutation computed per batch."""

from __future__ import annotations

import numpy as np

from myllm.data.permutation import FeistelPermutation
from myllm.data.sampler import BatchSampler


def large_sampler(monkeypatch, n_tokens=1_003, seed=0, **kwargs) -> BatchSampler:
    monkeypatch.setattr(BatchSampler, "EXACT_SHUFFLE_MAX_WINDOWS", 100)
    tokens = np.arange(n_tokens, dtype=np.uint16)  # a uint16 token cache
    return BatchSampler(tokens, 8, 10, seed, **kwargs)


def test_feistel_permutation_is_a_bijection_fixed_by_its_key():
    for size in (1, 2, 3, 17, 1000, 4099):
        values = FeistelPermutation(size, [7, 0])[np.arange(size)]
        assert sorted(values.tolist()) == list(range(size))
    first = FeistelPermutation(1000, [7, 0])[np.arange(1000)]
    np.testing.assert_array_equal(first, FeistelPermutation(1000, [7, 0])[np.arange(1000)])
    assert not np.array_equal(first, FeistelPermutation(1000, [7, 1])[np.arange(1000)])


def test_every_start_once_per_epoch_shards_and_resume(monkeypatch):
    sampler = large_sampler(monkeypatch)
    assert sampler.num_windows == 995 and sampler.steps_per_epoch == 100
    for epoch in range(2):
        steps = range(epoch * 100, (epoch + 1) * 100)
        starts = np.concatenate([sampler.batch(step)[0][:, 0] for step in steps])
        assert sorted(starts.tolist()) == list(range(995))
    assert sampler.batch(0)[0].dtype == np.int32 and len(sampler.batch(99)[0]) == 5
    resumed = large_sampler(monkeypatch)  # a fresh process asks for step 137 first
    np.testing.assert_array_equal(resumed.batch(137)[0], sampler.batch(137)[0])
    shards = [large_sampler(monkeypatch, rank=r, world_size=3) for r in range(3)]
    joined = np.concatenate([shard.batch(42)[0] for shard in shards])
    np.testing.assert_array_equal(joined, sampler.batch(42)[0])


def test_exact_shuffle_below_the_threshold_is_numpys_permutation():
    sampler = BatchSampler(np.arange(1_000, dtype=np.uint16), 8, 10, seed=3)
    expected = np.random.default_rng([3, 1]).permutation(992)
    np.testing.assert_array_equal(sampler.epoch_order(1), expected)
