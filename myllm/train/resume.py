"""Resuming a run: the checkpoint read once, its settings merged with the flags given, checks.

`myllm train --resume CKPT` continues the run in CKPT: the stored train config is the base and the
flags given override it; the model is the checkpoint's, so model flags must agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myllm.checkpoint.io import read_checkpoint
from myllm.checkpoint.state import Checkpoint
from myllm.config.settings import MACHINE_SETTINGS, ModelConfig, ModelSettings, TrainConfig
from myllm.data.tokenizers import Tokenizer, load_tokenizer
from myllm.errors import UserError


@dataclass
class Resume:
    """A checkpoint to continue from: where it is (tokenizer.json is beside it), what it holds."""

    path: Path
    checkpoint: Checkpoint


def read_resume(path: Path, given: dict[str, Any]) -> tuple[Resume, TrainConfig]:
    """Read checkpoint `path` once; the run's config is its stored one with `given` over it.

    Unless `given` names another checkpoint_dir, the resumed run writes beside the checkpoint.
    The machine's settings (the device) are not carried over: they belong to the machine.
    """
    checkpoint = read_checkpoint(path)
    given = {"checkpoint_dir": str(path.parent), **given}
    config = resumed_train_config(checkpoint.train_config or {}, given)
    return Resume(path, checkpoint), config


def resumed_train_config(stored: dict[str, Any], given: dict[str, Any]) -> TrainConfig:
    """A resumed run's settings: the checkpoint's, less the machine's, overridden by `given`."""
    kept = {name: value for name, value in stored.items() if name not in MACHINE_SETTINGS}
    return TrainConfig.from_dict({**kept, **given})


def load_resume_tokenizer(resume: Path, checkpoint: Checkpoint) -> Tokenizer:
    """The tokenizer.json beside the checkpoint, checked against the model's vocabulary."""
    tokenizer = load_tokenizer(
        resume.parent / "tokenizer.json", fix="put the run's tokenizer.json beside the checkpoint"
    )
    check_tokenizer_matches(tokenizer, checkpoint.model_config, resume)
    return tokenizer


def check_tokenizer_matches(tokenizer: Tokenizer, config: ModelConfig, path: Path) -> None:
    if tokenizer.vocab_size != config.vocab_size:
        raise UserError(
            f"tokenizer has {tokenizer.vocab_size} characters but checkpoint {path} was trained "
            f"with {config.vocab_size}: use the tokenizer.json written beside that checkpoint"
        )


def check_resume_matches(
    model_config: ModelConfig, train_config: TrainConfig, model_settings: ModelSettings
) -> None:
    """A resumed run keeps its model: explicit model flags must agree with the checkpoint."""
    for name, value in model_settings.given().items():
        if getattr(model_config, name) != value:
            raise UserError(
                f"--{name.replace('_', '-')} {value} differs from the checkpoint's "
                f"{getattr(model_config, name)}: drop the flag when resuming"
            )
    if train_config.block_size != model_config.max_seq_len:
        raise UserError(
            f"--block-size {train_config.block_size} differs from the checkpoint's "
            f"{model_config.max_seq_len}: drop the flag when resuming"
        )
