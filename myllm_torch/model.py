"""The GPT in PyTorch: the reference model, with its parameter names unchanged."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from myllm.config.settings import ModelConfig
from myllm.train.dropout import EMBEDDING_SITE, block_site
from myllm_torch.dropout import Dropout


class KVCache:
    """Keys and values of every layer for positions [0, offset), preallocated to max_seq_len."""

    def __init__(self, config: ModelConfig, batch_size: int, device: torch.device):
        shape = (batch_size, config.n_heads, config.max_seq_len, config.head_dim)
        self.keys = [torch.zeros(shape, device=device) for _ in range(config.n_layers)]
        self.values = [torch.zeros(shape, device=device) for _ in range(config.n_layers)]
        self.offset = 0

    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor):
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

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, keys=None):
        batch, length, d_model = x.shape  # [B, T, d_model]
        q, k, v = (
            W(x).view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
            for W in (self.W_q, self.W_k, self.W_v)
        )  # each [B, H, T, hd]
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, H, offset+T, hd]
        dropout_on = self.training and self.dropout.rule.active and keys is not None
        mask = sdpa_causal_mask(length, k.shape[2], x.device)
        is_causal = length == k.shape[2] and length > 1
        if use_fused_attention(q, dropout_on):
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal
            )  # [B, H, T, hd]
        else:
            weights_dropout = partial(self.dropout, keys=keys) if dropout_on else None
            out = explicit_attention(q, k, v, mask, is_causal, weights_dropout)  # [B, H, T, hd]
        out = out.transpose(1, 2).reshape(batch, length, d_model)
        return self.W_o(out)


def use_fused_attention(q: torch.Tensor, dropout_on: bool) -> bool:
    """Whether SDPA (rather than explicit_attention) computes attention for `q`.

    With dropout: never. The weights' mask is the counter-based one (myllm_torch/dropout.py),
    which SDPA cannot take (its dropout_p draws from torch's generator), as in the MLX twin.
    Evaluation, generation and dropout 0 keep SDPA. CPU, bfloat16 / float16 (autocast), when a
    backward follows: SDPA's CPU backward at low precision is slower than the explicit form
    (forward alone SDPA stays faster). CPU float32 keeps SDPA: faster, and its numbers are the
    reference run's. The timings: benchmarks/README.md, "Measurements behind choices in the code".
    """
    if dropout_on:
        return False
    low_precision = q.dtype in (torch.bfloat16, torch.float16)
    return not (q.device.type == "cpu" and low_precision and q.requires_grad)


def explicit_attention(
    q, k, v, mask: torch.Tensor | None, is_causal: bool, weights_dropout: Callable | None = None
):
    """softmax(q k^T / sqrt(hd), causal), `weights_dropout` on the weights, times v: SDPA
    spelled out."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # [B, H, T, offset+T]
    if is_causal:
        mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if weights_dropout is not None:
        weights = weights_dropout(weights)
    return weights @ v


def sdpa_causal_mask(
    query_length: int, key_length: int, device: torch.device
) -> torch.Tensor | None:
    """SDPA's attn_mask for queries at the last `query_length` of `key_length` positions; None
    when SDPA's own is_causal (square) or no mask (one query attending to everything cached) is
    exact. (MLX's causal_mask always gives the mask: its fused path has its own "causal".)"""
    if query_length == key_length or query_length == 1:
        return None
    offset = key_length - query_length
    return torch.ones(query_length, key_length, dtype=torch.bool, device=device).tril(offset)


# ModelConfig.activation: the exact (erf) GELU, or its tanh form (mlx-lm's GPT-2, llama.cpp).
ACTIVATIONS = {"gelu": F.gelu, "gelu_tanh": partial(F.gelu, approximate="tanh")}


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

    def forward(self, x: torch.Tensor, keys=None) -> torch.Tensor:
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

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, keys=None):
        x = x + self.attention_dropout(self.attention(self.ln1(x), cache, layer, keys), keys)
        return x + self.feed_forward_dropout(self.feed_forward(self.ln2(x), keys), keys)


class GPTModel(nn.Module):
    """Token + position embeddings, n_layers blocks, final LayerNorm, lm_head tied to embedding.

    The weights a run starts from are drawn by myllm/train/init.py (numpy, from the seed), the
    same for every backend; a model built here holds torch's default init until they are loaded.
    Dropout masks come from `keys` (myllm/train/dropout.py), given to forward when training.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.max_seq_len, config.d_model)
        self.dropout = Dropout(config.dropout, EMBEDDING_SITE)
        self.blocks = nn.ModuleList(TransformerBlock(config, i) for i in range(config.n_layers))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # tied: one tensor, two names

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, keys=None) -> torch.Tensor:
        """Logits [B, T, vocab] for token ids [B, T]; with a cache, positions continue after it.

        keys [B, sites, 2] int32: the rows' dropout keys; None (evaluation, generation): none."""
        offset = cache.offset if cache is not None else 0
        length = idx.shape[1]
        if offset + length > self.config.max_seq_len:
            raise ValueError(
                f"{offset + length} positions exceed max_seq_len {self.config.max_seq_len}"
            )
        positions = torch.arange(offset, offset + length, device=idx.device)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions), keys)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer, keys)  # [B, T, d_model]
        if cache is not None:
            cache.offset += length
        return self.lm_head(self.ln_final(x))  # [B, T, vocab]


def loss_fn(model: GPTModel, x: torch.Tensor, y: torch.Tensor, keys=None) -> torch.Tensor:
    """Mean cross-entropy of next-token prediction over all B * T positions."""
    logits = model(x, keys=keys)
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))


def count_parameters(model: GPTModel) -> int:
    """Trainable parameters, the tied embedding counted once."""
    return sum(p.numel() for p in model.parameters())
