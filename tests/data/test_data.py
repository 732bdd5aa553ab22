"""The shared batch sampler and the corpus split."""

import numpy as np
import pytest

from myllm.data.corpus import load_corpus
from myllm.data.sampler import BatchSampler, validation_batches
from myllm.errors import UserError


def make_sampler(n_tokens=103, block_size=8, batch_size=10, seed=0, **kwargs):
    tokens = np.arange(n_tokens, dtype=np.int32)
    return BatchSampler(tokens, block_size, batch_size, seed, **kwargs)


def test_y_is_x_shifted_by_one():
    sampler = make_sampler()
    x, y = sampler.batch(0)
    assert x.shape == y.shape == (10, 8)
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    np.testing.assert_array_equal(y[:, -1], x[:, -1] + 1)  # tokens are 0..n-1: windows are ranges


def test_every_start_visited_once_per_epoch_last_batch_partial():
    sampler = make_sampler()
    assert sampler.num_windows == 95 and sampler.steps_per_epoch == 10
    for epoch in range(2):
        steps = range(epoch * 10, (epoch + 1) * 10)
        starts = np.concatenate([sampler.batch(step)[0][:, 0] for step in steps])
        assert sorted(starts.tolist()) == list(range(95))
    assert len(sampler.batch(9)[0]) == 5


def test_same_seed_same_batches_other_seed_or_epoch_differs():
    first, second, other = make_sampler(seed=3), make_sampler(seed=3), make_sampler(seed=4)
    np.testing.assert_array_equal(first.batch(4)[0], second.batch(4)[0])
    assert not np.array_equal(first.batch(4)[0], other.batch(4)[0])
    assert not np.array_equal(first.epoch_order(0), first.epoch_order(1))


def test_ranks_shard_the_same_global_batch():
    whole = make_sampler(batch_size=10)
    shards = [make_sampler(batch_size=10, rank=r, world_size=2) for r in range(2)]
    for step in (0, 3, 9):
        joined = np.concatenate([shard.batch(step)[0] for shard in shards])
        np.testing.assert_array_equal(joined, whole.batch(step)[0])


def test_validation_full_pass_covers_every_window_once():
    tokens = np.arange(50, dtype=np.int32)
    starts = np.concatenate([x[:, 0] for x, _ in validation_batches(tokens, 8, 16, None, 0)])
    assert starts.tolist() == list(range(42))
    sampled = list(validation_batches(tokens, 8, 4, 3, 0))
    again = list(validation_batches(tokens, 8, 4, 3, 0))
    assert len(sampled) == 3
    np.testing.assert_array_equal(sampled[1][0], again[1][0])


def write(path, content):
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_split_is_reference_formula(tmp_path):
    text = "abcdefghij" * 100
    corpus = load_corpus(write(tmp_path / "t.txt", text), 8, 0.1, cache_dir=str(tmp_path / "c"))
    assert len(corpus.train_tokens) == int(1000 * 0.9)
    assert corpus.tokenizer.decode(corpus.val_tokens[:10]) == text[900:910]


def test_corpus_errors_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="fewer than block_size"):
        load_corpus(write(tmp_path / "short.txt", "short"), 8, 0.1, cache_dir=str(tmp_path))
    with pytest.raises(UserError, match="validation split has"):
        load_corpus(write(tmp_path / "x.txt", "x" * 100), 16, 0.1, cache_dir=str(tmp_path))


def test_data_file_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_corpus(tmp_path / "missing.txt", 8, 0.1)
    with pytest.raises(UserError, match="empty"):
        load_corpus(write(tmp_path / "empty.txt", b""), 8, 0.1)
    latin1 = write(tmp_path / "latin1.txt", "café".encode("latin-1") * 20)
    with pytest.raises(UserError, match="not UTF-8"):
        load_corpus(latin1, 8, 0.1, cache_dir=str(tmp_path / "c"))
