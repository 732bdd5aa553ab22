"""myllm_mlx.cpu_math: the CPU-fast exact GELU, softmax and attention against MLX's own.

All tensors are float32 on MLX's default device (the CPU here); tolerances are stated per test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("mlx")  # the package only: mlx.core must come after myllm_mlx

import myllm_mlx  # noqa: F401  (loads the system BLAS before anything imports mlx.core)

# isort: split
import mlx.core as mx
import mlx.nn as nn

from myllm_mlx.cpu_math import gelu, scaled_dot_product_attention, softmax


def exact_gelu(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GELU and its derivative in float64, from math.erf."""
    x = x.astype(np.float64)
    cdf = 0.5 * (1.0 + np.array([math.erf(v) for v in x * math.sqrt(0.5)]))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x * cdf, cdf + x * pdf


def test_gelu_is_the_exact_erf_gelu_to_float32_rounding():
    x = np.linspace(-10.0, 10.0, 200_001, dtype=np.float32)  # includes the clamped |x| > 4 range
    value, derivative = exact_gelu(x)
    got = np.array(gelu(mx.array(x)))
    grad = np.array(mx.grad(lambda a: gelu(a).sum())(mx.array(x)))
    assert np.abs(got - value).max() <= 1e-6  # float32
    assert np.abs(grad - derivative).max() <= 1e-6  # float32


@pytest.mark.parametrize("shape", [(7,), (2, 5, 33), (1, 16, 64)])
def test_gelu_matches_nn_gelu_at_every_shape(shape):
    # Compiled shapeless: one compilation must serve every shape, not only the first one seen.
    x = mx.random.normal(shape, key=mx.random.key(0)) * 3.0
    assert np.abs(np.array(gelu(x)) - np.array(nn.gelu(x))).max() <= 1e-6  # float32
    ours = mx.grad(lambda a: gelu(a).sum())(x)
    reference = mx.grad(lambda a: nn.gelu(a).sum())(x)
    assert np.abs(np.array(ours) - np.array(reference)).max() <= 1e-6  # float32


def test_softmax_matches_float64_and_masks_to_zero():
    rng = np.random.default_rng(0)
    scores = (rng.normal(size=(4, 3, 16, 16)) * 8).astype(np.float32)
    upper = np.triu_indices(16, 1)
    scores[..., upper[0], upper[1]] = -np.inf
    shifted = scores.astype(np.float64) - scores.max(-1, keepdims=True)
    expected = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    got = np.array(softmax(mx.array(scores)))
    assert np.abs(got - expected).max() <= 2e-6  # float32
    assert np.all(got[..., upper[0], upper[1]] == 0.0)


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 9, 9)])
def test_softmax_and_its_gradient_match_mx_softmax(shape):
    key = mx.random.key(1)
    scores = mx.random.normal(shape, key=key) * 6.0
    got = np.array(softmax(scores))
    assert np.abs(got - np.array(mx.softmax(scores, axis=-1))).max() <= 1e-6  # float32
    cotangent = mx.random.normal(shape, key=mx.random.key(2))
    ours = mx.vjp(softmax, [scores], [cotangent])[1][0]
    reference = mx.vjp(lambda s: mx.softmax(s, axis=-1), [scores], [cotangent])[1][0]
    assert np.abs(np.array(ours) - np.array(reference)).max() <= 1e-6  # float32


def keep_all(weights: mx.array) -> mx.array:
    return weights


def qkv(batch: int, heads: int, queries: int, keys: int, head_dim: int = 8):
    k1, k2, k3 = mx.random.split(mx.random.key(4), 3)
    q = mx.random.normal((batch, heads, queries, head_dim), key=k1)
    k = mx.random.normal((batch, heads, keys, head_dim), key=k2)
    v = mx.random.normal((batch, heads, keys, head_dim), key=k3)
    return q, k, v


def test_causal_attention_explicit_form_equals_the_fused_kernel():
    """On a CPU the explicit form runs with and without dropout; MLX's kernel is the reference."""
    q, k, v = qkv(2, 4, 9, 9)
    fused = mx.fast.scaled_dot_product_attention(q, k, v, scale=8**-0.5, mask="causal")
    ours = scaled_dot_product_attention(q, k, v, is_causal=True)
    # A weights_dropout, here one that keeps everything, takes the explicit form on any device.
    explicit = scaled_dot_product_attention(q, k, v, is_causal=True, weights_dropout=keep_all)
    assert np.abs(np.array(fused) - np.array(ours)).max() <= 1e-6  # float32
    assert np.abs(np.array(fused) - np.array(explicit)).max() <= 1e-6  # float32


def test_masked_attention_of_a_chunk_after_a_cache_equals_the_fused_kernel():
    q, k, v = qkv(1, 2, 3, 7)  # 3 new queries after 4 cached positions
    mask = mx.tril(mx.ones((3, 7), dtype=mx.bool_), k=4)
    fused = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    explicit = scaled_dot_product_attention(q, k, v, attn_mask=mask, weights_dropout=keep_all)
    reference = mx.fast.scaled_dot_product_attention(q, k, v, scale=8**-0.5, mask=mask)
    assert np.abs(np.array(fused) - np.array(reference)).max() <= 1e-6  # float32
    assert np.abs(np.array(explicit) - np.array(reference)).max() <= 1e-6  # float32
