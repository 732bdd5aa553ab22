"""Model and training hyper-parameters: the one place where defaults, ranges and help live.

The defaults are the reference implementation's CLI defaults. Both backends, the CLI, the
benchmark and the tests read them from here. Each field is declared once with `setting()`
(myllm/config/schema.py): the train command's flags, the config file's keys and every check are
derived from these declarations, so a new setting is one field here.

The maxima are sanity bounds, not tuning advice: a count must fit what can ever run (a billion
optimizer steps is over 1,000 GPT-2-sized runs of 600k steps, and 12 days at an impossible 1 ms a
step), and a size must fit an int32 index (the memory check that follows refuses what the
machine cannot hold); a value past them is a typo or a hostile input, refused before anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from myllm.backend.precision import COMPILE_CHOICES, DTYPE_CHOICES
from myllm.config.schema import check_fields, declared, problem, setting
from myllm.data.tokenizers import TOKENIZERS
from myllm.errors import UserError
from myllm.generate.sampling import SamplingSettings

# The sample printed during training (every sample_every_epochs epochs, and at the end).
TRAINING_SAMPLE = SamplingSettings(temperature=0.8, max_new_tokens=200)
STEPS_LIMIT = 10**9  # steps, intervals, warm-up: see the module docstring
EPOCHS_LIMIT = 10**6
BATCHES_LIMIT = 10**6  # validation batches per evaluation
SIZE_LIMIT = 2**31  # batch rows, block and model widths: int32 indices; memory decides below
DEPTH_LIMIT = 2**16  # layers and heads
SEED_LIMIT = 2**63  # numpy, torch and MLX all take seeds in [0, 2**63)
DEVICE_HELP = "torch: auto, cpu, cuda[:N], mps; mlx: auto, cpu, gpu"
CROSS_CHECKED = ("grad_accum_steps", "warmup_steps")  # checked against batch_size, max_steps
DEVICE_NAMES = ("auto", "cpu", "cuda", "mps", "gpu")
ACTIVATION_CHOICES = ("gelu", "gelu_tanh")  # old checkpoints, without the field, read as gelu


def _count(default: Any, help: str, high: int = STEPS_LIMIT, low: int = 1, **more: Any) -> Any:
    return setting(default, help, low=low, high=high, **more)


def _fraction(default: float, help: str, **bounds: Any) -> Any:
    return setting(default, help, low=0.0, high=1.0, **bounds)


@dataclass
class ModelConfig:
    """Shape of the GPT (docs/architecture.md). `d_ff` None means the reference's 4 * d_model."""

    vocab_size: int = setting(dataclasses.MISSING, "from the text", low=1, high=2**31, flag="")
    d_model: int = _count(384, "embedding width", SIZE_LIMIT)
    n_heads: int = _count(6, "attention heads (must divide --d-model)", DEPTH_LIMIT)
    n_layers: int = _count(6, "transformer blocks", DEPTH_LIMIT)
    max_seq_len: int = _count(128, "context length", SIZE_LIMIT, flag="--block-size")
    d_ff: int | None = _count(
        None, "feed-forward width (default: 4 * d_model)", SIZE_LIMIT, flag=""
    )
    dropout: float = _fraction(0.1, "dropout probability", open_high=True)
    activation: str = setting(
        "gelu", "MLP GELU: gelu (exact erf) or gelu_tanh (its tanh form, as mlx-lm's GPT-2 "
        "and llama.cpp compute it)", choices=ACTIVATION_CHOICES,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.d_ff is None:  # not set: the reference's width
            self.d_ff = 4 * self.d_model
        self.validate()

    def validate(self) -> None:
        check_fields(self)
        if self.d_model % self.n_heads != 0:
            raise UserError(
                f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}: "
                f"choose --n-heads among the divisors of {self.d_model}, e.g. "
                f"{_divisor_hint(self.d_model)}"
            )

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

    data: str = setting("data/input.txt", "UTF-8 text file")
    checkpoint_dir: str = setting("checkpoints", "the run's folder")
    epochs: int = _count(50, "passes over the text", EPOCHS_LIMIT)
    max_steps: int | None = _count(None, "stop after N steps")
    batch_size: int = _count(64, "sequences per step", SIZE_LIMIT)
    block_size: int = _count(128, "context length", SIZE_LIMIT)
    lr: float = setting(3e-4, "peak learning rate", low=0.0, open_low=True)
    min_lr_ratio: float = _fraction(0.1, "final lr / lr of the cosine schedule", flag="")
    warmup_steps: int = _count(0, "linear warm-up steps", low=0)
    beta1: float = _fraction(0.9, "AdamW beta1", open_high=True, flag="")
    beta2: float = _fraction(0.95, "AdamW beta2", open_high=True)
    eps: float = setting(1e-8, "AdamW epsilon", low=0.0, high=1.0, open_low=True, flag="")
    weight_decay: float = setting(0.1, "AdamW decoupled weight decay", low=0.0)
    grad_clip: float = setting(1.0, "max gradient norm", low=0.0, open_low=True, flag="")
    val_split: float = _fraction(0.1, "held-out share", open_low=True, open_high=True)
    seed: int = _count(1337, "init, dropout, batch order", SEED_LIMIT - 1, low=0)
    eval_interval: int | None = _count(None, "validate every N steps (default: each epoch)")
    eval_iters: int | None = _count(None, "validation batches (default: all)", BATCHES_LIMIT)
    log_interval: int = _count(10, "log the loss every N steps")
    save_interval: int | None = _count(None, "save checkpoint_last every N steps")
    save_minutes: float = setting(10.0, "save checkpoint_last every M minutes, 0 = off", low=0.0)
    sample_every_epochs: int = _count(5, "print a sample every N epochs", EPOCHS_LIMIT, flag="")
    device: str = setting("auto", DEVICE_HELP, shown=DEVICE_NAMES)
    # float32 matmuls in TF32 on GPUs that have it (CUDA; MLX's NAX kernels on the newest Apple
    # GPUs): faster, 10-bit mantissa. Off: float32 means float32 on every backend and device.
    tf32: bool = setting(
        False, "float32 matmuls in TF32 on GPUs that have it", flag="--tf32/--no-tf32",
        envvar="MYLLM_TF32",
    )  # fmt: skip
    tokenizer: str = setting(
        "char", "char, or byte: any file, losses in bits per byte", choices=tuple(TOKENIZERS)
    )
    cache_dir: str | None = setting(
        None, "token cache folder [env: MYLLM_CACHE] (default: .myllm_cache/ beside the data)"
    )
    dtype: str = setting(  # weights and AdamW state stay float32 (myllm/backend/precision.py)
        "auto", "compute dtype (auto: bfloat16 on CUDA / Apple GPUs and, for torch, on CPUs "
        "with AMX-BF16 / AVX512-BF16; float32 elsewhere); weights stay float32",
        choices=DTYPE_CHOICES,
    )  # fmt: skip
    compile: str = setting(
        "auto", "compile the step (auto: torch on CUDA, MLX always)", choices=COMPILE_CHOICES
    )
    grad_accum_steps: int = _count(1, "micro-batches per optimizer step", SIZE_LIMIT)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_fields(self)
        if self.grad_accum_steps > self.batch_size:
            raise UserError(
                f"grad_accum_steps {self.grad_accum_steps} is above batch_size "
                f"{self.batch_size} (each micro-batch needs a row): lower --grad-accum-steps"
            )
        if self.max_steps is not None and self.warmup_steps > self.max_steps:
            raise UserError(
                f"warmup_steps {self.warmup_steps} is longer than the run (max_steps "
                f"{self.max_steps}): the learning rate would never reach --lr; lower "
                "--warmup-steps"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_record(cls, values: dict[str, Any]) -> TrainConfig:
        """A stored config (a checkpoint's, a run.json's) for reading a run, not training it:
        a value today's declarations refuse falls back to its default, so a checkpoint written
        under older, looser checks still serves generate, eval and convert."""
        fields = declared(cls)
        kept = {k: v for k, v in values.items() if k in fields and _fits(cls, k, v)}
        try:
            return cls(**kept)
        except UserError:  # a cross-field rule: drop the dependent settings, keep the rest
            return cls(**{k: v for k, v in kept.items() if k not in CROSS_CHECKED})


def _fits(cls: type, name: str, value: Any) -> bool:
    annotation, spec, _ = declared(cls)[name]
    return problem(annotation, spec, value) is None


def model_settings_class() -> type:
    """ModelSettings: the settable ModelConfig fields, each None ("not given") by default.

    Derived from ModelConfig, so a model setting declared there is a flag and a config key here
    without a second edit."""
    fields = [
        (name, annotation | None, dataclasses.field(default=None, metadata={"spec": spec}))
        for name, (annotation, spec, _) in declared(ModelConfig).items()
        if name not in DERIVED_MODEL_FIELDS
    ]
    return dataclasses.make_dataclass("ModelSettings", fields, namespace={"given": _given})


def _given(self: Any) -> dict[str, Any]:
    """The model settings that were given, by ModelConfig field name."""
    values = dataclasses.asdict(self)
    return {name: value for name, value in values.items() if value is not None}


DERIVED_MODEL_FIELDS = ("vocab_size", "max_seq_len")  # from the text and from block_size
ModelSettings = model_settings_class()


def model_defaults() -> dict[str, Any]:
    """ModelConfig's default values by field name (vocab_size has none: the data decides it)."""
    return {name: default for name, (_, _, default) in declared(ModelConfig).items()
            if name != "vocab_size"}  # fmt: skip


# Settings that belong to the machine a run is on, not to the run: a resumed run does not carry
# them over (a checkpoint saved with --device gpu on a Mac resumes on a CUDA box or a CPU).
MACHINE_SETTINGS = ("device",)


def _divisor_hint(number: int) -> str:
    divisors = [d for d in range(1, min(number, 16) + 1) if number % d == 0]
    return ", ".join(str(d) for d in divisors[-4:])
