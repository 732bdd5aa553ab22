"""Decoding with the MLX GPT: the backend half of myllm/generation.py, and loading weights."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from myllm.checkpoint import Checkpoint
from myllm_mlx.device import resolve_device
from myllm_mlx.model import GPTModel, KVCache


def load_weights(model: GPTModel, weights: dict[str, np.ndarray]) -> None:
    """Copy checkpoint weights (canonical names) into the model's parameters, in place."""
    model.load_weights([(name, mx.array(array)) for name, array in weights.items()])


def load_model(checkpoint: Checkpoint, device_name: str = "auto") -> GPTModel:
    """A GPTModel in eval mode holding the checkpoint's weights, on the chosen device."""
    resolve_device(device_name)  # MLX: sets the default device; arrays need no .to()
    model = GPTModel(checkpoint.model_config)
    load_weights(model, checkpoint.weights)
    mx.eval(model.parameters())
    model.eval()
    return model


def load_decoder(checkpoint: Checkpoint, device_name: str = "auto") -> Decoder:
    """A Decoder for `myllm generate`: the checkpoint's model on the chosen device."""
    return Decoder(load_model(checkpoint, device_name))


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
