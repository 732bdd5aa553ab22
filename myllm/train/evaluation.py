"""`myllm eval`: a checkpoint's loss on a text, in nats, bits per character and perplexity.

Bits per character is how character-level language models are compared: the mean cross-entropy
in nats divided by ln 2. The windows are the trainer's validation windows (myllm.data.sampler's
validation_batches) and the loss is the backend trainer's own `evaluate`, so `myllm eval` on a
run's checkpoint reproduces the val_loss that training logged for the same windows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from myllm.backend.registry import load_backend, native_backend
from myllm.checkpoint.io import read_checkpoint
from myllm.config.settings import TrainConfig
from myllm.data.char_tokenizer import CharTokenizer
from myllm.data.sampler import prepare_corpus, read_text, validation_batches
from myllm.errors import UserError

Split = Literal["val", "train", "all"]
SPLITS: tuple[str, ...] = ("val", "train", "all")


def bits_per_character(loss_nats: float) -> float:
    """Cross-entropy per character in bits: nats / ln 2."""
    return loss_nats / math.log(2)


@dataclass
class EvalResult:
    """What `myllm eval` prints (and writes with --json)."""

    checkpoint: str
    backend: str
    data: str
    split: str
    windows: int
    tokens: int
    block_size: int
    eval_iters: int | None
    loss_nats: float
    bits_per_character: float
    perplexity: float

    def to_dict(self) -> dict:
        return asdict(self)


def split_tokens(
    text: str, tokenizer: CharTokenizer, split: str, block_size: int, val_split: float
) -> np.ndarray:
    """The tokens of `split`: the run's train or validation part (its val_split), or all."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if split == "all":
        if len(text) < block_size + 1:
            raise UserError(
                f"the text has {len(text)} characters, fewer than block_size + 1 = "
                f"{block_size + 1}: evaluate a longer text"
            )
        return tokenizer.encode_array(text)
    corpus = prepare_corpus(text, block_size, val_split, tokenizer)
    return corpus.val_tokens if split == "val" else corpus.train_tokens


def evaluate_checkpoint(
    checkpoint_path: Path,
    data: str | None = None,
    split: str = "val",
    eval_iters: int | None = None,
    backend_name: str | None = None,
    device: str = "auto",
) -> EvalResult:
    """Mean loss of the checkpoint over every window of `split` (or eval_iters seeded batches).

    Batch size, seed and validation split are the run's own (stored in the checkpoint), so the
    windows are those training evaluated on.
    """
    checkpoint = read_checkpoint(checkpoint_path)
    model_config = checkpoint.model_config
    stored = checkpoint.train_config or {}
    overrides = {"device": device, "block_size": model_config.max_seq_len, "eval_iters": eval_iters}
    if data is not None:
        overrides["data"] = data
    config = TrainConfig.from_dict({**TrainConfig.from_record(stored).to_dict(), **overrides})
    tokenizer = CharTokenizer.load(checkpoint_path.parent / "tokenizer.json")
    if tokenizer.vocab_size != model_config.vocab_size:
        raise UserError(
            f"tokenizer.json beside {checkpoint_path} has {tokenizer.vocab_size} characters, the "
            f"model {model_config.vocab_size}: use the tokenizer.json written with that checkpoint"
        )
    tokens = split_tokens(
        read_text(config.data), tokenizer, split, config.block_size, config.val_split
    )
    backend = load_backend(backend_name or native_backend(checkpoint_path))
    trainer = backend.Trainer(model_config, config)
    trainer.load_checkpoint(checkpoint)
    num_windows = len(tokens) - config.block_size
    windows = num_windows if eval_iters is None else eval_iters * config.batch_size
    batches = validation_batches(
        tokens, config.block_size, config.batch_size, eval_iters, config.seed
    )
    loss = trainer.evaluate(batches)
    trainer.close()
    return EvalResult(
        checkpoint=str(checkpoint_path),
        backend=backend.name,
        data=config.data,
        split=split,
        windows=windows,
        tokens=windows * config.block_size,
        block_size=config.block_size,
        eval_iters=eval_iters,
        loss_nats=loss,
        bits_per_character=bits_per_character(loss),
        perplexity=math.exp(loss),
    )
