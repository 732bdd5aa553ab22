"""Model presets for `myllm train --preset`: shapes from the reference up to GPT-2 small.

Each preset sets the model shape, block size and batch size; explicit flags override it. The
figures printed beside them (parameters, memory per step) are computed from the ModelConfig, so
a run can be sized before it starts; tokens/s figures are measured with `myllm bench` and kept
in the README.
"""

from __future__ import annotations

from dataclasses import dataclass

from myllm.config.settings import ModelConfig
from myllm.errors import UserError

FLOAT32_BYTES = 4


@dataclass(frozen=True)
class ModelPreset:
    """A model shape and the batch it trains with."""

    name: str
    d_model: int
    n_heads: int
    n_layers: int
    block_size: int
    batch_size: int
    description: str

    def model_settings(self) -> dict[str, int]:
        return {"d_model": self.d_model, "n_heads": self.n_heads, "n_layers": self.n_layers}

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size, max_seq_len=self.block_size, **self.model_settings()
        )


PRESETS = {
    preset.name: preset
    for preset in (
        ModelPreset("reference", 384, 6, 6, 128, 64, "the reference's defaults"),
        ModelPreset("medium", 512, 8, 8, 256, 32, "wider and deeper, longer context"),
        ModelPreset("large", 640, 10, 12, 512, 16, "GPT-2 small's depth, narrower"),
        ModelPreset("gpt2-small", 768, 12, 12, 1024, 8, "GPT-2 small's shape (12 x 768, 1024)"),
    )
}


def get_preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[name]


def parameter_count(config: ModelConfig) -> int:
    """Trainable parameters of the GPT (the lm_head is tied to the token embedding)."""
    d_model, d_ff = config.d_model, config.d_ff
    attention = 4 * d_model * d_model + d_model  # W_q, W_k, W_v without bias; W_o with bias
    feed_forward = 2 * d_model * d_ff + d_ff + d_model
    layer_norms = 2 * 2 * d_model
    embeddings = (config.vocab_size + config.max_seq_len) * d_model
    return config.n_layers * (attention + feed_forward + layer_norms) + 2 * d_model + embeddings


def training_memory_bytes(config: ModelConfig, batch_size: int) -> int:
    """Estimated float32 memory of one training step: an estimate to size runs, not a measurement.

    Weights, gradients and AdamW's two moments (4 copies of the parameters), plus the activations
    kept for the backward pass. Korthikanti et al. (2022) count s*b*h*(34 + 5*a*s/h) bytes per
    layer in 16-bit (s block, b batch, h d_model, a heads; it holds for this pre-norm block with
    d_ff = 4 d_model and materialised attention scores); float32 doubles it. Plus the logits and
    their gradient.
    """
    tokens = batch_size * config.max_seq_len
    per_layer_16bit = tokens * (34 * config.d_model + 5 * config.n_heads * config.max_seq_len)
    activations = 2 * config.n_layers * per_layer_16bit
    logits = FLOAT32_BYTES * 2 * tokens * config.vocab_size
    return FLOAT32_BYTES * 4 * parameter_count(config) + activations + logits
