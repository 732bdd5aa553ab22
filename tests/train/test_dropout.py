"""myllm/train/dropout.py: counter-based masks, bit-identical in numpy, torch and MLX."""

from __future__ import annotations

import numpy as np
import pytest

from myllm.train.dropout import dropout_keys, dropout_rule, keep_mask, site_count, step_keys

SHAPES = [(7,), (3, 5, 11), (4, 33, 33), (16, 64)]  # odd sizes: the last pair is half used


def torch_mask(keys: np.ndarray, shape, threshold: int) -> np.ndarray:
    import torch

    from myllm_torch.dropout import keep_mask as torch_keep_mask

    return torch_keep_mask(torch.from_numpy(keys.view(np.int32)), shape, threshold).numpy()


def mlx_mask(keys: np.ndarray, shape, threshold: int) -> np.ndarray:
    import mlx.core as mx

    import myllm_mlx  # noqa: F401  (the BLAS before mlx.core)
    from myllm_mlx.dropout import keep_mask as mlx_keep_mask

    return np.array(mlx_keep_mask(mx.array(keys), shape, threshold))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_torch_and_mlx_masks_are_the_reference_bit_for_bit(shape, p):
    keys = dropout_keys(seed=2**40 + 7, step=123, first_row=5, rows=3, sites=9)[:, 4]
    threshold = dropout_rule(p).threshold
    reference = keep_mask(keys, shape, threshold)
    assert reference.shape == (3, *shape) and reference.dtype == bool
    np.testing.assert_array_equal(torch_mask(keys, shape, threshold), reference)
    np.testing.assert_array_equal(mlx_mask(keys, shape, threshold), reference)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_the_drop_rate_is_p_and_the_scale_keeps_the_expectation(p):
    rule = dropout_rule(p)
    keys = dropout_keys(seed=1, step=0, first_row=0, rows=8, sites=1)[:, 0]
    kept = keep_mask(keys, (256, 256), rule.threshold)
    # 524288 draws: the standard error of the rate is below 7e-4
    assert abs((1 - kept.mean()) - p) < 4e-3
    assert abs(kept.mean() * rule.scale - 1) < 6e-3
    assert abs(rule.threshold / 65536 - p) <= 2**-17


def test_no_two_rows_steps_sites_or_seeds_share_a_mask():
    shape, threshold = (32, 64), dropout_rule(0.5).threshold
    base = keep_mask(dropout_keys(3, 10, 0, 2, 5)[:, 1], shape, threshold)
    others = [
        base[1:],  # another row
        keep_mask(dropout_keys(3, 11, 0, 1, 5)[:, 1], shape, threshold),  # another step
        keep_mask(dropout_keys(3, 10, 0, 1, 5)[:, 2], shape, threshold),  # another site
        keep_mask(dropout_keys(4, 10, 0, 1, 5)[:, 1], shape, threshold),  # another seed
    ]
    for other in others:
        agreement = (other[0] == base[0]).mean()
        assert 0.45 < agreement < 0.55  # independent halves agree about half the time


def test_ranks_and_micro_batches_get_the_keys_of_the_single_process_step():
    sites = site_count(2)
    whole = step_keys(9, 4, 2, [10], (10, 0, 1))[0]  # one process, one micro-batch
    for world_size in (1, 2, 3):
        shards = np.array_split(np.arange(10), world_size)
        for rank, rows in enumerate(shards):
            micro_rows = [len(piece) for piece in np.array_split(rows, 2)]  # 2 micro-batches
            keys = step_keys(9, 4, 2, micro_rows, (10, rank, world_size))
            np.testing.assert_array_equal(np.concatenate(keys), whole[rows])
    assert whole.shape == (10, sites, 2) and whole.dtype == np.uint32
