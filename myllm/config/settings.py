"""Model and training hyper-parameters: the one place where defaults live.

The defaults are the reference implementation's CLI defaults. Both backends, the CLI, the
benchmark and the tests read them from here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from myllm.backend.precision import check_compile, check_dtype
from myllm.errors import UserError
from myllm.generate.sampling import SamplingSettings

# The sample printed during training (every sample_every_epochs epochs, and at the end).
TRAINING_SAMPLE = SamplingSettings(temperature=0.8, max_new_tokens=200)


@dataclass
class ModelConfig:
    """Shape of the GPT (docs/architecture.md). `d_ff` of 0 means the reference's 4 * d_model."""

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
        if not 0.0 <= self.dropout < 1.0:  # also refuses nan: every comparison with it is False
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
    """How to train. `None` means "not set": epoch-based, full validation split."""

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
    save_interval: int | None = None
    save_minutes: float = 10.0
    sample_every_epochs: int = 5
    device: str = "auto"
    # float32 matmuls in TF32 on GPUs that have it (CUDA; MLX's NAX kernels on the newest Apple
    # GPUs): faster, 10-bit mantissa. Off: float32 means float32 on every backend and device.
    tf32: bool = False
    tokenizer: str = "char"  # char or byte (byte: any file, losses in bits per byte)
    cache_dir: str | None = None  # token cache folder; None: $MYLLM_CACHE or beside the text
    dtype: str = (
        "auto"  # compute dtype; weights and AdamW state stay float32 (myllm/backend/precision.py)
    )
    compile: str = "auto"  # auto, on, off: the training step compiled (torch.compile, mx.compile)
    grad_accum_steps: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "block_size", "log_interval", "grad_accum_steps"):
            _require_positive(name, getattr(self, name))
        for name in ("max_steps", "eval_interval", "eval_iters"):
            value = getattr(self, name)
            if value is not None:
                _require_positive(name, value)
        for name in ("lr", "weight_decay", "beta2", "val_split"):
            _require_finite(name, getattr(self, name))
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
        if self.tokenizer not in ("char", "byte"):
            raise UserError(
                f"tokenizer {self.tokenizer!r} is unknown: use --tokenizer char or byte"
            )
        if self.weight_decay < 0:
            raise UserError(f"weight_decay {self.weight_decay} is negative: use 0 or more")
        check_seed(self.seed)
        if self.save_interval is not None:
            _require_positive("save_interval", self.save_interval)
        _require_finite("save_minutes", self.save_minutes)
        if self.save_minutes < 0:
            raise UserError(
                f"save_minutes {self.save_minutes} is negative: use 0 (off) or more, "
                "e.g. --save-minutes 10"
            )
        check_dtype(self.dtype)
        check_compile(self.compile)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class ModelSettings:
    """The model flags of `myllm train`: None means not given (the default, or the checkpoint's)."""

    d_model: int | None = None
    n_heads: int | None = None
    n_layers: int | None = None
    dropout: float | None = None
    d_ff: int | None = None  # settable from a config file

    def given(self) -> dict[str, Any]:
        """The flags that were given, by ModelConfig field name."""
        values = dataclasses.asdict(self)
        return {name: value for name, value in values.items() if value is not None}


def model_defaults() -> dict[str, Any]:
    """ModelConfig's default values by field name (vocab_size has none: the data decides it)."""
    return {
        f.name: f.default
        for f in dataclasses.fields(ModelConfig)
        if f.default is not dataclasses.MISSING
    }


# Settings that belong to the machine a run is on, not to the run: a resumed run does not carry
# them over (a checkpoint saved with --device gpu on a Mac resumes on a CUDA box or a CPU).
MACHINE_SETTINGS = ("device",)


# Fields whose command-line flag is not their name with dashes.
FLAG_NAMES = {"max_seq_len": "--block-size"}
SEED_LIMIT = 2**63  # numpy, torch and MLX all take seeds in [0, 2**63)


def flag_name(name: str) -> str:
    """The command-line flag that sets the field `name`, e.g. max_seq_len -> --block-size."""
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def check_seed(seed: int | None) -> None:
    """A seed every backend accepts: an integer in [0, 2**63), else a UserError naming --seed."""
    if seed is not None and not (isinstance(seed, int) and 0 <= seed < SEED_LIMIT):
        raise UserError(f"--seed {seed} is outside [0, 2**63): use e.g. --seed 1337")


def _require_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise UserError(f"{name} must be a positive integer, got {value!r}: fix {flag_name(name)}")


def _require_finite(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise UserError(f"{name} {value!r} is not a finite number: fix {flag_name(name)}")


def _divisor_hint(number: int) -> str:
    divisors = [d for d in range(1, min(number, 16) + 1) if number % d == 0]
    return ", ".join(str(d) for d in divisors[-4:])
