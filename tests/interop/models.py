"""Small myllm models on disk for the interop tests: random weights (every bias and LayerNorm
nonzero, so a mapping mistake shows in the logits), a tokenizer.json beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from myllm.backend.registry import load_backend
from myllm.checkpoint.io import write_checkpoint
from myllm.checkpoint.state import Checkpoint, parameter_shapes
from myllm.config.settings import ModelConfig, TrainConfig
from myllm.data.byte_tokenizer import ByteTokenizer
from myllm.data.char_tokenizer import CharTokenizer
from myllm.generate.loop import generate_tokens
from myllm.generate.sampling import SamplingSettings
from tests.helpers import sample_text

SUFFIX = {"torch": ".pt", "mlx": ".safetensors"}
TEXT = sample_text(3000) + "é€😀"  # two- to four-byte characters too
PROMPT = "ROMEO:\nWhat, ho! é€"


def tokenizer_for(mode: str):
    return ByteTokenizer.build_vocab(TEXT) if mode == "byte" else CharTokenizer.build_vocab(TEXT)


def write_model(
    directory: Path, backend: str = "torch", activation: str = "gelu", mode: str = "char",
    seed: int = 0,
) -> Path:  # fmt: skip
    """A checkpoint of `backend`'s format with its tokenizer.json; returns its path."""
    tokenizer = tokenizer_for(mode)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=32, n_heads=4, n_layers=2, max_seq_len=64,
        dropout=0.0, activation=activation,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    weights = {
        name: rng.normal(0.0, 0.1 if len(shape) == 1 else 0.3, shape).astype(np.float32)
        for name, shape in parameter_shapes(config).items()
    }
    for name in weights:
        if name.endswith(".weight") and ("ln" in name):
            weights[name] += 1.0
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"model{SUFFIX[backend]}"
    write_checkpoint(path, Checkpoint(model_config=config, weights=weights))
    tokenizer.save(directory / "tokenizer.json")
    return path


def myllm_model(backend_name: str, checkpoint: Checkpoint):
    """The backend's GPTModel holding `checkpoint`'s weights (for helpers.logits_of)."""
    backend = load_backend(backend_name)
    config = checkpoint.model_config
    trainer = backend.Trainer(config, TrainConfig(device="cpu", block_size=config.max_seq_len))
    trainer.load_checkpoint(checkpoint)
    return backend, trainer


def myllm_greedy(backend_name: str, checkpoint: Checkpoint, ids: list[int], tokens: int):
    """myllm's own greedy continuation of `ids`: token ids."""
    _, trainer = myllm_model(backend_name, checkpoint)
    greedy = SamplingSettings(temperature=0.0, max_new_tokens=tokens)
    return [int(step[0]) for step in generate_tokens(trainer.decoder(), ids, greedy, None)]
