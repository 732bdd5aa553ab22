"""The GPT in PyTorch: the reference model, with its parameter names unchanged."""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from myllm.config.settings import ModelConfig


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

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.W_q = nn.Linear(d_model, d_model, bias=False)
        self.W_k = nn.Linear(d_model, d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)
        self.W_o = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0):
        batch, length, d_model = x.shape  # [B, T, d_model]
        q, k, v = (
            W(x).view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
            for W in (self.W_q, self.W_k, self.W_v)
        )  # each [B, H, T, hd]
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, H, offset+T, hd]
        dropout_p = self.dropout if self.training else 0.0
        mask = sdpa_causal_mask(length, k.shape[2], x.device)
        is_causal = length == k.shape[2] and length > 1
        if use_fused_attention(q, dropout_p):
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
            )  # [B, H, T, hd]
        else:
            out = explicit_attention(q, k, v, mask, is_causal, dropout_p)  # [B, H, T, hd]
        out = out.transpose(1, 2).reshape(batch, length, d_model)
        return self.W_o(out)


def use_fused_attention(q: torch.Tensor, dropout_p: float) -> bool:
    """Whether SDPA (rather than explicit_attention) computes attention for `q`.

    MPS with dropout: its fused kernels accept dropout_p but do not apply it
    (pytorch/pytorch#184126 makes it an error instead), so the weights go through
    explicit_attention, as in the MLX twin. CPU, bfloat16 / float16 (autocast), when a backward
    follows: SDPA's CPU backward at low precision is slower than the explicit form (forward alone
    SDPA stays faster). CPU float32 keeps SDPA: faster without dropout, and its numbers are the
    reference run's. The timings: benchmarks/README.md, "Measurements behind choices in the code".
    """
    if q.device.type == "mps":
        return dropout_p == 0.0
    low_precision = q.dtype in (torch.bfloat16, torch.float16)
    return not (q.device.type == "cpu" and low_precision and q.requires_grad)


def explicit_attention(q, k, v, mask: torch.Tensor | None, is_causal: bool, dropout_p: float):
    """softmax(q k^T / sqrt(hd), causal), dropout on the weights, times v: SDPA spelled out."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # [B, H, T, offset+T]
    if is_causal:
        mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = F.dropout(torch.softmax(scores, dim=-1), dropout_p, training=dropout_p > 0.0)
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

    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: str = "gelu"):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + dropout(attention(ln1(x))), then x + dropout(feed_forward(ln2(x)))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.feed_forward = FeedForward(
            config.d_model, config.d_ff, config.dropout, config.activation
        )
        self.ln1 = nn.LayerNorm(config.d_model)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0):
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
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # tied: one tensor, two names
        self.apply(init_weights)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits [B, T, vocab] for token ids [B, T]; with a cache, positions continue after it."""
        offset = cache.offset if cache is not None else 0
        length = idx.shape[1]
        if offset + length > self.config.max_seq_len:
            raise ValueError(
                f"{offset + length} positions exceed max_seq_len {self.config.max_seq_len}"
            )
        positions = torch.arange(offset, offset + length, device=idx.device)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)  # [B, T, d_model]
        if cache is not None:
            cache.offset += length
        return self.lm_head(self.ln_final(x))  # [B, T, vocab]


def init_weights(module: nn.Module) -> None:
    """Linear and Embedding N(0, 0.02), zero biases; LayerNorm keeps its ones / zeros."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def loss_fn(model: GPTModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token prediction over all B * T positions."""
    logits = model(x)
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))


def count_parameters(model: GPTModel) -> int:
    """Trainable parameters, the tied embedding counted once."""
    return sum(p.numel() for p in model.parameters())
