"""Model FLOPs per token, for the FLOP/s and MFU figures of `myllm bench`."""

from __future__ import annotations

from myllm.checkpoint.state import parameter_count
from myllm.config.settings import ModelConfig

FLOP_FORMULA = (
    "training FLOPs/token = 6*N + 12*n_layers*T*d_model; forward FLOPs/token = 2*N + "
    "4*n_layers*T*d_model; N = non-embedding parameters (attention, feed-forward, biases, "
    "LayerNorms) + d_model*vocab for the lm_head matmul (its weight is the tied token "
    "embedding, so it is not a parameter of its own, but it is a full matmul per token); "
    "T = block_size; attention is counted over all T keys (PaLM's convention: the causal half "
    "is not subtracted); MFU = achieved FLOP/s / measured matmul peak FLOP/s, the peak being "
    "the best of a sweep of matmuls (squares and the model's own GEMM shapes) in the dtype in use"
)


def flop_parameter_count(config: ModelConfig) -> int:
    """N of the FLOP formula: non-embedding parameters + the tied lm_head's d_model * vocab."""
    # All parameters less the two embeddings (lookups, not matmuls), plus the lm_head matmul,
    # whose weight is the token embedding: only the position embedding drops out.
    return parameter_count(config) - config.max_seq_len * config.d_model


def model_flops_per_token(config: ModelConfig, training: bool) -> float:
    """Model FLOPs per token (see FLOP_FORMULA): 6N + 12 L T d to train, 2N + 4 L T d forward.

    A multiply-add is 2 FLOPs; the backward pass costs twice the forward. The attention term is
    the QK^T and AV matmuls over a sequence of T = max_seq_len (= block_size here).
    """
    attention = 4 * config.n_layers * config.max_seq_len * config.d_model  # forward
    per_token = 2 * flop_parameter_count(config) + attention
    return float(3 * per_token if training else per_token)
