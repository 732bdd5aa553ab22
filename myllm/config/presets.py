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
