"""The GPT in MLX: the reference model, with its parameter names unchanged."""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from myllm.config.settings import ModelConfig
from myllm.train.dropout import EMBEDDING_SITE, block_site
from myllm_mlx.cpu_math import gelu, scaled_dot_product_attention
from myllm_mlx.dropout import Dropout


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

    def __init__(self, d_model: int, n_heads: int, dropout: float, layer: int = 0):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = Dropout(dropout, block_site(layer, 0))
        self.W_q = nn.Linear(d_model, d_model, bias=False)
        self.W_k = nn.Linear(d_model, d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)
        self.W_o = nn.Linear(d_model, d_model)

    def __call__(self, x: mx.array, cache: KVCache | None = None, layer: int = 0, keys=None):
        batch, length, d_model = x.shape  # [B, T, d_model]
        q, k, v = (
            W(x).reshape(batch, length, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
            for W in (self.W_q, self.W_k, self.W_v)
        )  # each [B, H, T, hd]
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, H, offset+T, hd]
        dropout_on = self.training and self.dropout.rule.active and keys is not None
        mask = causal_mask(length, k.shape[2])
        is_causal = length == k.shape[2] and length > 1
        weights_dropout = partial(self.dropout, keys=keys) if dropout_on else None
        out = scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, weights_dropout=weights_dropout
        )  # [B, H, T, hd]
        out = out.transpose(0, 2, 1, 3).reshape(batch, length, d_model)
        return self.W_o(out)


def causal_mask(query_length: int, key_length: int) -> mx.array | None:
    """Mask for queries at the last `query_length` of `key_length` positions; None when
    is_causal (square) or no mask (one query attending to everything cached) is exact.
    (No device argument: MLX arrays live in unified memory.)"""
    if query_length == key_length or query_length == 1:
        return None
    offset = key_length - query_length
    return mx.tril(mx.ones((query_length, key_length), dtype=mx.bool_), k=offset)


# ModelConfig.activation: the exact (erf) GELU, or its tanh form (mlx-lm's GPT-2, llama.cpp).
ACTIVATIONS = {"gelu": gelu, "gelu_tanh": nn.gelu_approx}


class FeedForward(nn.Module):
    """linear1 -> GELU (ACTIVATIONS) -> dropout -> linear2."""

    def __init__(
        self, d_model: int, d_ff: int, dropout: float, layer: int = 0, activation: str = "gelu"
    ):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = Dropout(dropout, block_site(layer, 2))

    def __call__(self, x: mx.array, keys=None) -> mx.array:
        return self.linear2(self.dropout(self.activation(self.linear1(x)), keys))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + dropout(attention(ln1(x))), then x + dropout(feed_forward(ln2(x)))."""

    def __init__(self, config: ModelConfig, layer: int = 0):
        super().__init__()
        p = config.dropout
        self.attention = MultiHeadAttention(config.d_model, config.n_heads, p, layer)
        self.feed_forward = FeedForward(config.d_model, config.d_ff, p, layer, config.activation)
        self.ln1 = nn.LayerNorm(config.d_model)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.attention_dropout = Dropout(p, block_site(layer, 1))
        self.feed_forward_dropout = Dropout(p, block_site(layer, 3))

    def __call__(self, x: mx.array, cache: KVCache | None = None, layer: int = 0, keys=None):
        x = x + self.attention_dropout(self.attention(self.ln1(x), cache, layer, keys), keys)
        return x + self.feed_forward_dropout(self.feed_forward(self.ln2(x), keys), keys)


class GPTModel(nn.Module):
    """Token + position embeddings, n_layers blocks, final LayerNorm, lm_head tied to embedding.

    The weights a run starts from are drawn by myllm/train/init.py (numpy, from the seed), the
    same for every backend; a model built here holds MLX's default init until they are loaded.
    Dropout masks come from `keys` (myllm/train/dropout.py), given to __call__ when training.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.max_seq_len, config.d_model)
        self.dropout = Dropout(config.dropout, EMBEDDING_SITE)
        self.blocks = [TransformerBlock(config, i) for i in range(config.n_layers)]
        self.ln_final = nn.LayerNorm(config.d_model)
        # No lm_head module: MLX cannot alias one parameter under two names, so the tied output
        # projection is token_embedding.as_linear (see __call__).

    def __call__(self, idx: mx.array, cache: KVCache | None = None, keys=None) -> mx.array:
        """Logits [B, T, vocab] for token ids [B, T]; with a cache, positions continue after it.

        keys [B, sites, 2] uint32: the rows' dropout keys; None (evaluation, generation): none."""
        offset = cache.offset if cache is not None else 0
        length = idx.shape[1]
        if offset + length > self.config.max_seq_len:
            raise ValueError(
                f"{offset + length} positions exceed max_seq_len {self.config.max_seq_len}"
            )
        positions = mx.arange(offset, offset + length)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions), keys)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer, keys)  # [B, T, d_model]
        if cache is not None:
            cache.offset += length
        return self.token_embedding.as_linear(self.ln_final(x))  # [B, T, vocab], tied lm_head


def loss_fn(model: GPTModel, x: mx.array, y: mx.array, keys=None) -> mx.array:
    """Mean cross-entropy of next-token prediction over all B * T positions."""
    logits = model(x, keys=keys)
    return nn.losses.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="mean"
    )


def count_parameters(model: GPTModel) -> int:
    """Trainable parameters, the tied embedding counted once."""
    return sum(p.size for _, p in tree_flatten(model.trainable_parameters()))
