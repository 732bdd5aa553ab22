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
from myllm.config.schema import check_value, declared, flag_of
from myllm.config.settings import MACHINE_SETTINGS, ModelConfig, ModelSettings, TrainConfig
from myllm.data.tokenizers import Tokenizer, load_tokenizer
from myllm.errors import UserError
from myllm.run.files import tokenizer_beside


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
    config = resumed_train_config(checkpoint.train_config or {}, given, path)
    return Resume(path, checkpoint), config


def resumed_train_config(
    stored: dict[str, Any], given: dict[str, Any], path: Path | None = None
) -> TrainConfig:
    """A resumed run's settings: the checkpoint's, less the machine's, overridden by `given`.

    The given values are checked first, so an error names the flag; a stored value that
    today's declarations refuse is an error naming the checkpoint (give the setting anew)."""
    settings = declared(TrainConfig)
    for name, value in given.items():
        check_value(name, settings[name][0], settings[name][1], value)
    kept = {name: value for name, value in stored.items() if name not in MACHINE_SETTINGS}
    try:
        return TrainConfig.from_dict({**kept, **given})
    except UserError as error:
        raise UserError(f"with the settings stored in checkpoint {path}: {error}") from None


def check_steps_left(config: TrainConfig, step: int, path: Path) -> None:
    """--max-steps at or below the checkpoint's step leaves nothing to train: say so before
    anything is read or written (no bar, no sample, no file)."""
    if config.max_steps is not None and config.max_steps <= step:
        raise UserError(
            f"nothing to train: checkpoint {path} is at step {step} and max_steps is "
            f"{config.max_steps}; give --max-steps above {step} to continue it"
        )


def load_resume_tokenizer(resume: Path, checkpoint: Checkpoint) -> Tokenizer:
    """The tokenizer.json beside the checkpoint, checked against the model's vocabulary."""
    tokenizer = load_tokenizer(
        tokenizer_beside(resume), fix="put the run's tokenizer.json beside the checkpoint"
    )
    check_tokenizer_matches(tokenizer, checkpoint.model_config, resume)
    return tokenizer


def check_tokenizer_matches(tokenizer: Tokenizer, config: ModelConfig, path: Path) -> None:
    if tokenizer.vocab_size != config.vocab_size:
        raise UserError(
            f"tokenizer has {tokenizer.vocab_size} {tokenizer.unit}s but checkpoint {path} was "
            f"trained with {config.vocab_size}: use the tokenizer.json written with that checkpoint"
        )


def check_resume_matches(
    model_config: ModelConfig, train_config: TrainConfig, model_settings: ModelSettings
) -> None:
    """A resumed run keeps its model: explicit model flags must agree with the checkpoint."""
    check_model_given(model_config, model_settings.given())
    if train_config.block_size != model_config.max_seq_len:
        raise UserError(
            f"--block-size {train_config.block_size} differs from the checkpoint's "
            f"{model_config.max_seq_len}: drop the flag when resuming"
        )


def check_model_given(model_config: ModelConfig, given: dict[str, Any]) -> None:
    """Model settings given on resume are compared with the checkpoint's own values (not the
    defaults): the checkpoint's value is accepted, another is refused, naming flag or key."""
    settings = declared(ModelConfig)
    for name, value in given.items():
        if getattr(model_config, name) != value:
            where = flag_of(name, settings[name][1]) or f"{name} (config key)"
            raise UserError(
                f"{where} {value} differs from the checkpoint's "
                f"{getattr(model_config, name)}: drop it when resuming"
            )
