"""Model and training hyper-parameters: the one place where defaults live.

The defaults are the reference's CLI defaults (DESIGN §3). Both backends, the CLI and the tests read
them from here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from myllm.errors import UserError
from myllm.precision import check_compile, check_dtype


@dataclass
class ModelConfig:
    """Shape of the GPT (DESIGN §2). `d_ff` of 0 means the reference's 4 * d_model."""

    vocab_size: int
    d_model: int = 384
    n_heads: int = 6
    n_layers: int = 6
    max_seq_len: int = 128
    d_ff: int = 0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.d_ff == 0:
            self.d_ff = 4 * self.d_model
        self.validate()

    def validate(self) -> None:
        for name in (
            "vocab_size",
            "d_model",
            "n_heads",
            "n_layers",
            "max_seq_len",
            "d_ff",
        ):
            _require_positive(name, getattr(self, name))
        if self.d_model % self.n_heads != 0:
            raise UserError(
                f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}: "
                f"choose --n-heads among the divisors of {self.d_model}, e.g. "
                f"{_divisor_hint(self.d_model)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout {self.dropout} is outside [0, 1): use e.g. --dropout 0.1")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class TrainConfig:
    """How to train (DESIGN §3). `None` means "not set": epoch-based, full validation split."""

    data: str = "data/input.txt"
    checkpoint_dir: str = "checkpoints"
    epochs: int = 50
    max_steps: int | None = None
    batch_size: int = 64
    block_size: int = 128
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    val_split: float = 0.1
    seed: int = 1337
    eval_interval: int | None = None
    eval_iters: int | None = None
    log_interval: int = 10
    sample_every_epochs: int = 5
    device: str = "auto"
    dtype: str = "auto"  # compute dtype; weights and AdamW state stay float32 (myllm/precision.py)
    compile: str = "auto"
    grad_accum_steps: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "block_size", "log_interval", "grad_accum_steps"):
            _require_positive(name, getattr(self, name))
        for name in ("max_steps", "eval_interval", "eval_iters"):
            value = getattr(self, name)
            if value is not None:
                _require_positive(name, value)
        if self.lr <= 0:
            raise UserError(f"lr {self.lr} must be positive: use e.g. --lr 3e-4")
        if self.warmup_steps < 0:
            raise UserError(f"warmup_steps {self.warmup_steps} is negative: use 0 or more")
        if not 0.0 < self.val_split < 1.0:
            raise UserError(
                f"val_split {self.val_split} is outside (0, 1): use e.g. --val-split 0.1"
            )
        if not 0.0 <= self.beta2 < 1.0:
            raise UserError(f"beta2 {self.beta2} is outside [0, 1): use e.g. --beta2 0.95")
        if self.weight_decay < 0:
            raise UserError(f"weight_decay {self.weight_decay} is negative: use 0 or more")
        check_dtype(self.dtype)
        check_compile(self.compile)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _require_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        flag = "--" + name.replace("_", "-")
        raise UserError(f"{name} must be a positive integer, got {value!r}: fix {flag}")


def _divisor_hint(number: int) -> str:
    divisors = [d for d in range(1, min(number, 16) + 1) if number % d == 0]
    return ", ".join(str(d) for d in divisors[-4:])
