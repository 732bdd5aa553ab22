"""`myllm eval`: a checkpoint's loss on a text, in nats, bits per character (or byte), perplexity.

Bits per character is how character-level language models are compared: the mean cross-entropy
in nats divided by ln 2. The text reaches the model through training's own path (the token cache,
memory-mapped, and the run's tokenizer.json, char or byte), the windows are chosen by training's
evaluation plan (myllm/train/evaluation_plan.py) with the run's own batch size, seed and
--eval-iters, and the loss is the backend trainer's own `evaluate`: so `myllm eval` on a run's
checkpoint reproduces the val_loss that training logged at that step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from myllm.backend.registry import load_backend, native_backend
from myllm.checkpoint.io import read_checkpoint
from myllm.checkpoint.state import Checkpoint
from myllm.config.settings import TrainConfig
from myllm.data.corpus import Corpus, read_corpus
from myllm.data.sampler import validation_batches
from myllm.errors import UserError
from myllm.train.evaluation_plan import EvaluationPlan, plan_evaluation
from myllm.train.resume import load_resume_tokenizer

SPLITS: tuple[str, ...] = ("val", "train", "all")


def bits_per_character(loss_nats: float) -> float:
    """Cross-entropy per character (per byte in byte mode) in bits: nats / ln 2."""
    return loss_nats / math.log(2)


@dataclass
class EvalResult:
    """What `myllm eval` prints (and writes with --json)."""

    checkpoint: str
    backend: str
    data: str
    split: str
    unit: str  # what one token is: character, or byte (bits_per_character is then per byte)
    windows: int
    tokens: int
    block_size: int
    eval_iters: int | None  # None: every window of the split once
    loss_nats: float
    bits_per_character: float
    perplexity: float
    note: str | None = None  # how an --eval-iters past the split was bounded

    def to_dict(self) -> dict:
        return asdict(self)


def split_tokens(corpus: Corpus, split: str, block_size: int) -> np.ndarray:
    """The tokens of `split`: the run's train or validation part (its val_split), or all."""
    tokens = {"val": corpus.val_tokens, "train": corpus.train_tokens, "all": corpus.tokens}[split]
    if len(tokens) < block_size + 1:
        raise UserError(
            f"the {split} split has {len(tokens)} {corpus.tokenizer.unit}s, fewer than "
            f"block_size + 1 = {block_size + 1}: evaluate a longer text or another --split"
        )
    return tokens


def eval_config(checkpoint: Checkpoint, data: str | None, device: str) -> TrainConfig:
    """The run's stored settings (batch size, seed, split, eval_iters), on this machine."""
    stored = TrainConfig.from_record(checkpoint.train_config or {}).to_dict()
    overrides = {"device": device, "block_size": checkpoint.model_config.max_seq_len}
    if data is not None:
        overrides["data"] = data
    return TrainConfig.from_dict({**stored, **overrides})


def evaluation_plan(
    num_tokens: int, config: TrainConfig, eval_iters: int | None
) -> tuple[EvaluationPlan, str | None]:
    """Training's plan for `num_tokens`: the run's --eval-iters, or the one given here.

    A given --eval-iters asking for more batches than the split holds is bounded to one full
    pass (the note says so): 10**12 batches of a 16-window split would run for ever.
    """
    block_size, batch_size = config.block_size, config.batch_size
    if eval_iters is None:  # the run's own plan: the windows its logged val_loss averaged
        return plan_evaluation(num_tokens, block_size, batch_size, config.eval_iters), None
    plan = plan_evaluation(num_tokens, block_size, batch_size, eval_iters)
    full_batches = math.ceil(plan.split_windows / batch_size)
    if eval_iters <= full_batches:
        return plan, None
    note = (
        f"--eval-iters {eval_iters} asks for more batches than the split holds "
        f"({full_batches:,} of {batch_size}): evaluating one full pass instead"
    )
    return EvaluationPlan(None, batch_size, plan.split_windows, "--eval-iters past the split"), note


def evaluate_checkpoint(
    checkpoint_path: Path,
    data: str | None = None,
    split: str = "val",
    eval_iters: int | None = None,
    backend_name: str | None = None,
    device: str = "auto",
    console: Console | None = None,
) -> EvalResult:
    """Mean loss of the checkpoint over the windows of `split` that training's plan reads.

    Batch size, seed, validation split and eval_iters are the run's own (stored in the
    checkpoint), so the windows are those training evaluated on; `eval_iters` overrides.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: use --split {' or '.join(SPLITS)}")
    checkpoint = read_checkpoint(checkpoint_path)
    config = eval_config(checkpoint, data, device)
    tokenizer = load_resume_tokenizer(checkpoint_path, checkpoint)
    corpus = read_corpus(
        Path(config.data), config.val_split, tokenizer.mode, config.cache_dir, tokenizer, console
    )
    tokens = split_tokens(corpus, split, config.block_size)
    plan, note = evaluation_plan(len(tokens), config, eval_iters)
    backend = load_backend(backend_name or native_backend(checkpoint_path))
    trainer = backend.Trainer(checkpoint.model_config, config)
    trainer.load_checkpoint(checkpoint)
    batches = validation_batches(
        tokens, config.block_size, config.batch_size, plan.eval_iters, config.seed
    )
    try:
        loss = trainer.evaluate(batches)
    finally:
        trainer.close()
    return EvalResult(
        checkpoint=str(checkpoint_path),
        backend=backend.name,
        data=config.data,
        split=split,
        unit=tokenizer.unit,
        windows=plan.windows_per_evaluation,
        tokens=plan.windows_per_evaluation * config.block_size,
        block_size=config.block_size,
        eval_iters=plan.eval_iters,
        loss_nats=loss,
        bits_per_character=bits_per_character(loss),
        perplexity=math.exp(loss),
        note=note,
    )
