"""Helpers shared by the tests: a small real text, tiny configs, logits as numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from myllm.config import ModelConfig, TrainConfig

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKENDS = ["torch", "mlx"]
TINY_MODEL = {"d_model": 32, "n_heads": 4, "n_layers": 2, "dropout": 0.0}


def sample_text(characters: int = 20_000) -> str:
    """The start of Tiny Shakespeare from the offline mirror, else a deterministic stand-in."""
    source = SHARED_DATA / "tinyshakespeare.txt"
    if source.is_file():
        return source.read_text(encoding="utf-8")[:characters]
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "ROMEO:", "JULIET:\n"]
    return " ".join(rng.choice(words, size=characters // 4))[:characters]


def tiny_model_config(vocab_size: int = 65, **overrides) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, max_seq_len=16, **{**TINY_MODEL, **overrides})


def tiny_train_config(data: Path, checkpoint_dir: Path, **overrides) -> TrainConfig:
    values = {
        "data": str(data), "checkpoint_dir": str(checkpoint_dir), "batch_size": 8,
        "block_size": 16, "lr": 3e-3, "log_interval": 5, "eval_iters": 4, "seed": 7,
        "device": "cpu",
    }  # fmt: skip
    return TrainConfig(**{**values, **overrides})


def logits_of(backend, model, ids: np.ndarray) -> np.ndarray:
    """Full logits [B, T, V] of `model` for int ids [B, T], as float32 numpy, dropout off."""
    if backend.name == "torch":
        import torch

        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            return model(torch.from_numpy(ids.astype(np.int64)).to(device)).cpu().numpy()
    import mlx.core as mx

    model.eval()
    return np.array(model(mx.array(ids.astype(np.int32))))
