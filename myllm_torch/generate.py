"""Decoding with the torch GPT: the backend half of myllm/generate/loop.py, and loading weights."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from myllm.backend.precision import choose_dtype
from myllm.checkpoint.state import Checkpoint
from myllm_torch.device import resolve_device
from myllm_torch.model import GPTModel, KVCache
from myllm_torch.precision import DTYPES, autocast, device_facts


def load_weights(model: GPTModel, weights: dict[str, np.ndarray]) -> None:
    """Copy checkpoint weights (canonical names) into the model's parameters, in place."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(torch.from_numpy(weights[name]))


def load_model(checkpoint: Checkpoint, device_name: str = "auto") -> GPTModel:
    """A GPTModel in eval mode holding the checkpoint's weights, on the chosen device."""
    device = resolve_device(device_name)
    model = GPTModel(checkpoint.model_config)
    load_weights(model, checkpoint.weights)
    return model.to(device).eval()


def load_decoder(
    checkpoint: Checkpoint, device_name: str = "auto", dtype: str = "float32"
) -> Decoder:
    """A Decoder for `myllm generate`: the checkpoint's model on the chosen device and dtype."""
    return Decoder(load_model(checkpoint, device_name), dtype)


class Decoder:
    """Last-position logits of the model, with or without a KV cache, as numpy for sampling.

    `dtype` is the compute dtype (autocast; the weights stay float32), auto as in training.
    """

    def __init__(self, model: GPTModel, dtype: str = "float32"):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.max_seq_len = model.config.max_seq_len
        self.dtype = choose_dtype(dtype, device_facts(self.device), decoding=True)
        # Autocast casts every Linear's weights again at each forward: more than half of a
        # cached decode step on a CPU (benchmarks/README.md). Cast once here instead.
        self.low_parameters = None
        if self.dtype != "float32":
            self.low_parameters = cast_linear_parameters(model, DTYPES[self.dtype])

    def new_cache(self, batch_size: int) -> KVCache:
        return KVCache(self.model.config, batch_size, self.device)

    @torch.inference_mode()
    def last_logits(self, tokens: np.ndarray, cache: KVCache | None) -> np.ndarray:
        idx = torch.from_numpy(tokens).to(self.device)  # [B, T]
        with autocast(self.device, self.dtype):
            logits = forward_with(self.model, self.low_parameters, idx, cache)[:, -1, :]
        return logits.float().cpu().numpy()  # [B, vocab]


def forward_with(
    model: GPTModel,
    low_parameters: dict[str, torch.Tensor] | None,
    idx: torch.Tensor,
    cache: KVCache | None = None,
) -> torch.Tensor:
    """model(idx, cache), with `low_parameters` (cast_linear_parameters) in place of the float32
    Linear weights when given: the tied lm_head gets its own cast copy, the embedding stays."""
    if low_parameters is None:
        return model(idx, cache)
    return functional_call(model, low_parameters, (idx, cache), tie_weights=False, strict=False)


def cast_linear_parameters(model: GPTModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every Linear's weight and bias in `dtype`: exactly what autocast would cast them to."""
    return {
        f"{module_name}.{name}": parameter.detach().to(dtype)
        for module_name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        for name, parameter in module.named_parameters(recurse=False)
    }
