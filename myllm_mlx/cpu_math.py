"""Exact GELU, softmax and attention for the MLX GPT, fast on MLX's CPU backend.

This module has no twin in myllm_torch/: there, model.py calls torch.nn.functional's gelu and
scaled_dot_product_attention, whose CPU kernels are vectorised and multi-threaded. On Linux,
MLX's CPU backend computes erf and exp with scalar libm / software-fma calls on one thread:
~90 ms for the GELU of one FeedForward of the default model (torch: 3-7 ms), ~19 ms for one
attention softmax. Here both are rebuilt from multiply / add / divide only, which mx.compile
fuses into vectorised loops, at full float32 accuracy. On a GPU, MLX's own kernels are used.
Measured on a 2-core x86 CPU, batch 16: GELU 90 -> 11 ms forward, softmax 19 -> 7 ms.

The element-wise pieces are compiled shapeless: one compilation serves every shape, so the
uncompiled callers (generation without a KV cache sees a new sequence length at every token)
do not recompile them per shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import mlx.core as mx

# Eigen's float erf (also TensorFlow's and XLA's): erf(z) = z * P(z^2) / Q(z^2) for z clamped to
# [-4, 4] (erf is +-1 in float32 beyond); P / Q in float64 keeps the result within 1 ulp.
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)
# exp(x) = exp(x / 2^8)^(2^8), exp(x / 2^8) by its degree-10 Taylor polynomial, in float64:
# the float32 result is within 0.51 ulp (correctly rounded in 99.99% of cases).
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(10, -1, -1))
_EXP_SQUARINGS = 8


def on_cpu() -> bool:
    """Whether MLX runs its ops on the CPU (the default device is where they run)."""
    return mx.default_device().type == mx.cpu


def gelu(x: mx.array) -> mx.array:
    """Exact (erf) GELU, x * (1 + erf(x / sqrt(2))) / 2, to float32 rounding, fast on CPU.

    Why not nn.gelu: MLX's CPU erf runs element by element through libm on one thread, 10x
    slower than this multiply / add / divide form that mx.compile vectorises. Max |error| vs
    the exact value is 7e-7 in float32 (torch's own GELU: 1.2e-6); the gradient is exact too.
    """
    if on_cpu():
        return _gelu_cpu(x)
    return x * 0.5 * (1.0 + mx.erf(x * math.sqrt(0.5)))


def softmax(scores: mx.array) -> mx.array:
    """Softmax over the last axis, to float32 rounding, fast on CPU (see gelu)."""
    if on_cpu():
        return _softmax_cpu(scores)
    return mx.softmax(scores, axis=-1)


def scaled_dot_product_attention(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    attn_mask: mx.array | None = None,
    is_causal: bool = False,
    weights_dropout: Callable[[mx.array], mx.array] | None = None,
) -> mx.array:
    """softmax(q k^T / sqrt(head_dim) + mask) v, as torch.nn.functional's; q, k, v [B, H, T, hd].

    attn_mask: boolean, True where a query may attend; is_causal: the square causal mask;
    weights_dropout: applied to the attention weights (None: no dropout).
    On a GPU without dropout: MLX's fused kernel. On a CPU, and with dropout (which the fused
    kernel lacks): the explicit form with the softmax above. MLX's CPU "fused" kernel is this
    explicit form with mx.softmax, whose scalar exp made the forward 1.3x slower (attention of
    the default model, batch 16: 175 vs 131 ms; fwd+bwd within 5 %, benchmarks/README.md).
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    if weights_dropout is None and not on_cpu():
        mask = "causal" if is_causal else attn_mask
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
    scores = (q * scale) @ k.transpose(0, 1, 3, 2)  # [B, H, T, S]
    if is_causal:
        attn_mask = mx.tril(mx.ones(scores.shape[-2:], dtype=mx.bool_))
    if attn_mask is not None:
        scores = mx.where(attn_mask, scores, -mx.inf)
    weights = softmax(scores)
    if weights_dropout is not None:
        weights = weights_dropout(weights)
    return weights @ v  # [B, H, T, hd]


def _horner(coefficients: tuple[float, ...], x: mx.array) -> mx.array:
    result = coefficients[0]
    for coefficient in coefficients[1:]:
        result = result * x + coefficient
    return result


def _erf(x: mx.array) -> mx.array:
    z = mx.clip(x, -4.0, 4.0)
    z2 = (z * z).astype(mx.float64)
    return z * (_horner(_ERF_P, z2) / _horner(_ERF_Q, z2)).astype(x.dtype)


def _exp(x: mx.array) -> mx.array:
    # Clipped so that -inf (masked scores) gives 0, and overflow inf, after the float32 cast.
    y = (mx.clip(x, -104.0, 88.8) * 2.0**-_EXP_SQUARINGS).astype(mx.float64)
    result = _horner(_EXP_TAYLOR, y)
    for _ in range(_EXP_SQUARINGS):
        result = result * result
    return result.astype(x.dtype)


_elementwise = partial(mx.compile, shapeless=True)


@_elementwise
def _gelu_forward(x: mx.array) -> mx.array:
    return x * 0.5 * (1.0 + _erf(x * math.sqrt(0.5)))


@_elementwise
def _gelu_backward(x: mx.array, cotangent: mx.array) -> mx.array:
    cdf = 0.5 * (1.0 + _erf(x * math.sqrt(0.5)))
    pdf = _exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
    return cotangent * (cdf + x * pdf)


@mx.custom_function
def _gelu_cpu(x: mx.array) -> mx.array:
    return _gelu_forward(x)


@_gelu_cpu.vjp
def _gelu_cpu_vjp(x: mx.array, cotangent: mx.array, output: mx.array) -> mx.array:
    # d/dx GELU = cdf(x) + x * pdf(x), exactly as torch's GELU backward.
    return _gelu_backward(x, cotangent)


@_elementwise
def _exp_compiled(x: mx.array) -> mx.array:
    return _exp(x)


@mx.custom_function
def _softmax_cpu(scores: mx.array) -> mx.array:
    weights = _exp_compiled(scores - mx.max(scores, axis=-1, keepdims=True))
    return weights / mx.sum(weights, axis=-1, keepdims=True)


@_softmax_cpu.vjp
def _softmax_cpu_vjp(scores: mx.array, cotangent: mx.array, weights: mx.array) -> mx.array:
    return weights * (cotangent - mx.sum(cotangent * weights, axis=-1, keepdims=True))
