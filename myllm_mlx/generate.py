"""Decoding with the MLX GPT: the backend half of myllm/generation.py (DESIGN §4)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from myllm.checkpoint import Checkpoint
from myllm_mlx.device import resolve_device
from myllm_mlx.model import GPTModel, KVCache


def load_model(checkpoint: Checkpoint, device_name: str = "auto") -> GPTModel:
    """A GPTModel in eval mode holding the checkpoint's weights, on the chosen device."""
    resolve_device(device_name)  # MLX: sets the default device; arrays need no .to()
    model = GPTModel(checkpoint.model_config)
    model.load_weights([(name, mx.array(array)) for name, array in checkpoint.weights.items()])
    mx.eval(model.parameters())
    model.eval()
    return model


class Decoder:
    """Last-position logits of the model, with or without a KV cache, as numpy for sampling."""

    def __init__(self, model: GPTModel):
        model.eval()
        self.model = model
        self.max_seq_len = model.config.max_seq_len

    def new_cache(self, batch_size: int) -> KVCache:
        return KVCache(self.model.config, batch_size)

    def last_logits(self, tokens: np.ndarray, cache: KVCache | None) -> np.ndarray:
        idx = mx.array(tokens.astype(np.int32))  # [B, T]
        logits = self.model(idx, cache)[:, -1, :]  # [B, vocab]
        return np.array(logits.astype(mx.float32))
