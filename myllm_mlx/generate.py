"""Decoding with the MLX GPT: the backend half of myllm/generate/loop.py, and loading weights."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from myllm.backend.precision import choose_dtype
from myllm.checkpoint.state import Checkpoint
from myllm_mlx.device import resolve_device
from myllm_mlx.model import GPTModel, KVCache
from myllm_mlx.precision import cast_parameters, device_facts, parameters_swapped_in


def load_weights(model: GPTModel, weights: dict[str, np.ndarray]) -> None:
    """Copy checkpoint weights (canonical names) into the model's parameters, in place."""
    model.load_weights([(name, mx.array(array)) for name, array in weights.items()])


def load_model(checkpoint: Checkpoint, device_name: str = "auto") -> GPTModel:
    """A GPTModel in eval mode holding the checkpoint's weights, on the chosen device."""
    resolve_device(device_name)  # MLX: sets the default device; arrays need no .to()
    model = GPTModel(checkpoint.model_config)
    load_weights(model, checkpoint.weights)
    mx.eval(model.parameters())  # MLX is lazy: the weights are loaded here, not at first use
    return model.eval()


def load_decoder(
    checkpoint: Checkpoint, device_name: str = "auto", dtype: str = "float32"
) -> Decoder:
    """A Decoder for `myllm generate`: the checkpoint's model on the chosen device and dtype."""
    return Decoder(load_model(checkpoint, device_name), dtype)


class Decoder:
    """Last-position logits of the model, with or without a KV cache, as numpy for sampling.

    `dtype` is the compute dtype (the weights stay float32), auto as in training.
    """

    def __init__(self, model: GPTModel, dtype: str = "float32"):
        self.model = model.eval()
        self.max_seq_len = model.config.max_seq_len
        self.dtype = choose_dtype(dtype, device_facts(mx.default_device()), decoding=True)
        # MLX has no autocast: a low-dtype copy of the weights is swapped in for each forward.
        self.low_parameters = None
        if self.dtype != "float32":
            self.low_parameters = cast_parameters(model.parameters(), self.dtype)

    def new_cache(self, batch_size: int) -> KVCache:
        return KVCache(self.model.config, batch_size)

    def last_logits(self, tokens: np.ndarray, cache: KVCache | None) -> np.ndarray:
        idx = mx.array(tokens.astype(np.int32))  # [B, T]
        logits = forward_with(self.model, self.low_parameters, idx, cache)[:, -1, :]
        return np.array(logits.astype(mx.float32))  # [B, vocab]


def forward_with(
    model: GPTModel,
    low_parameters: dict | None,
    idx: mx.array,
    cache: KVCache | None = None,
) -> mx.array:
    """model(idx, cache), with `low_parameters` (cast_parameters) in place of the float32
    weights when given (MLX has no autocast: every floating parameter is swapped)."""
    with parameters_swapped_in(model, low_parameters):
        return model(idx, cache)
