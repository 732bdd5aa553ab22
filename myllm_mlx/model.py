"""The GPT in MLX: the reference model, with its parameter names unchanged."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from myllm.config import ModelConfig


class KVCache:
    """Keys and values of every layer for positions [0, offset), preallocated to max_seq_len."""

    def __init__(self, config: ModelConfig, batch_size: int):
        shape = (batch_size, config.n_heads, config.max_seq_len, config.head_dim)
        self.keys = [mx.zeros(shape) for _ in range(config.n_layers)]
        self.values = [mx.zeros(shape) for _ in range(config.n_layers)]
        self.offset = 0

    def update(self, layer: int, keys: mx.array, values: mx.array):
        """Store this step's keys/values [B, H, T, hd]; return all so far [B, H, offset+T, hd]."""
        end = self.offset + keys.shape[2]
        self.keys[layer][:, :, self.offset : end] = keys
        self.values[layer][:, :, self.offset : end] = values
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class MultiHeadAttention(nn.Module):
    """Causal self-attention; scale 1/sqrt(d_model/n_heads); dropout on the attention weights."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.W_q = nn.Linear(d_model, d_model, bias=False)
        self.W_k = nn.Linear(d_model, d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)
        self.W_o = nn.Linear(d_model, d_model)
        # MLX's fused attention has no dropout_p: with dropout, the weights go through this.
        self.attention_dropout = nn.Dropout(dropout)

    def __call__(self, x: mx.array, cache: KVCache | None = None, layer: int = 0):
        batch, length, d_model = x.shape  # [B, T, d_model]
        q, k, v = (
            W(x).reshape(batch, length, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
            for W in (self.W_q, self.W_k, self.W_v)
        )  # each [B, H, T, hd]
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, H, offset+T, hd]
        dropout_p = self.dropout if self.training else 0.0
        scale = 1.0 / math.sqrt(self.head_dim)
        if dropout_p == 0.0:
            # MLX's "causal" is aligned to the last key, so it also holds after a cache.
            mask = "causal" if length > 1 else None
            out = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
        else:
            scores = (q * scale) @ k.transpose(0, 1, 3, 2)  # [B, H, T, offset+T]
            mask = causal_mask(length, k.shape[2])
            if mask is not None:
                scores = mx.where(mask, scores, -mx.inf)
            out = self.attention_dropout(softmax(scores)) @ v  # [B, H, T, hd]
        out = out.transpose(0, 2, 1, 3).reshape(batch, length, d_model)
        return self.W_o(out)


def causal_mask(query_length: int, key_length: int) -> mx.array | None:
    """Mask for queries at the last `query_length` of `key_length` positions; None when one
    query attends to everything cached. (No device argument: MLX arrays live in unified memory.)"""
    if query_length == 1:
        return None
    offset = key_length - query_length
    return mx.tril(mx.ones((query_length, key_length), dtype=mx.bool_), k=offset)


class FeedForward(nn.Module):
    """linear1 -> exact (erf) GELU -> dropout -> linear2."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def __call__(self, x: mx.array) -> mx.array:
        return self.linear2(self.dropout(gelu(self.linear1(x))))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + dropout(attention(ln1(x))), then x + dropout(feed_forward(ln2(x)))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.feed_forward = FeedForward(config.d_model, config.d_ff, config.dropout)
        self.ln1 = nn.LayerNorm(config.d_model)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def __call__(self, x: mx.array, cache: KVCache | None = None, layer: int = 0):
        x = x + self.dropout(self.attention(self.ln1(x), cache, layer))
        return x + self.dropout(self.feed_forward(self.ln2(x)))


class GPTModel(nn.Module):
    """Token + position embeddings, n_layers blocks, final LayerNorm, lm_head tied to embedding."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.max_seq_len, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = [TransformerBlock(config) for _ in range(config.n_layers)]
        self.ln_final = nn.LayerNorm(config.d_model)
        # No lm_head module: MLX cannot alias one parameter under two names, so the tied output
        # projection is token_embedding.as_linear (see __call__).
        self.apply_to_modules(lambda _, module: init_weights(module))

    def __call__(self, idx: mx.array, cache: KVCache | None = None) -> mx.array:
        """Logits [B, T, vocab] for token ids [B, T]; with a cache, positions continue after it."""
        offset = cache.offset if cache is not None else 0
        length = idx.shape[1]
        if offset + length > self.config.max_seq_len:
            raise ValueError(
                f"{offset + length} positions exceed max_seq_len {self.config.max_seq_len}"
            )
        positions = mx.arange(offset, offset + length)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)  # [B, T, d_model]
        if cache is not None:
            cache.offset += length
        return self.token_embedding.as_linear(self.ln_final(x))  # [B, T, vocab], tied lm_head


def init_weights(module: nn.Module) -> None:
    """Linear and Embedding N(0, 0.02), zero biases; LayerNorm keeps its ones / zeros."""
    if isinstance(module, nn.Linear | nn.Embedding):
        module.weight = mx.random.normal(module.weight.shape, scale=0.02)
    if isinstance(module, nn.Linear) and "bias" in module:
        module.bias = mx.zeros(module.bias.shape)


def loss_fn(model: GPTModel, x: mx.array, y: mx.array) -> mx.array:
    """Mean cross-entropy of next-token prediction over all B * T positions."""
    logits = model(x)
    return nn.losses.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="mean"
    )


def count_parameters(model: GPTModel) -> int:
    """Trainable parameters, the tied embedding counted once."""
    return sum(p.size for _, p in tree_flatten(model.trainable_parameters()))


# --- Exact GELU and softmax that are fast on MLX's CPU backend --------------------------------
#
# On Linux, MLX's CPU backend computes erf and exp with scalar libm / software-fma calls on one
# thread: ~90 ms for the GELU of one FeedForward of the default model (torch: 3-7 ms), ~19 ms for
# one attention softmax. Below, both are rebuilt from multiply / add / divide only, which
# mx.compile fuses into vectorised loops, at full float32 accuracy. On a GPU, MLX's own kernels
# are used. Measured on a 2-core x86 CPU, batch 16: GELU 90 -> 11 ms forward, softmax 19 -> 7 ms.

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


def _on_cpu() -> bool:
    return mx.default_device().type == mx.cpu


def gelu(x: mx.array) -> mx.array:
    """Exact (erf) GELU, x * (1 + erf(x / sqrt(2))) / 2, to float32 rounding, fast on CPU.

    Why not nn.gelu: MLX's CPU erf runs element by element through libm on one thread, 10x
    slower than this multiply / add / divide form that mx.compile vectorises. Max |error| vs
    the exact value is 7e-7 in float32 (torch's own GELU: 1.2e-6); the gradient is exact too.
    """
    if _on_cpu():
        return _gelu_cpu(x)
    return x * 0.5 * (1.0 + mx.erf(x * math.sqrt(0.5)))


def softmax(scores: mx.array) -> mx.array:
    """Softmax over the last axis, to float32 rounding, fast on CPU (see gelu)."""
    if _on_cpu():
        return _softmax_cpu(scores)
    return mx.softmax(scores, axis=-1)


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


@mx.compile
def _gelu_forward(x: mx.array) -> mx.array:
    return x * 0.5 * (1.0 + _erf(x * math.sqrt(0.5)))


@mx.compile
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


@mx.compile
def _exp_compiled(x: mx.array) -> mx.array:
    return _exp(x)


@mx.custom_function
def _softmax_cpu(scores: mx.array) -> mx.array:
    weights = _exp_compiled(scores - mx.max(scores, axis=-1, keepdims=True))
    return weights / mx.sum(weights, axis=-1, keepdims=True)


@_softmax_cpu.vjp
def _softmax_cpu_vjp(scores: mx.array, cotangent: mx.array, weights: mx.array) -> mx.array:
    return weights * (cotangent - mx.sum(cotangent * weights, axis=-1, keepdims=True))
