"""What `myllm bench` runs: presets, the settings asked for, the resolved plan and its batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from myllm.backend.precision import check_compile, check_dtype
from myllm.config.commands import TOKENS_LIMIT
from myllm.config.schema import check_fields, check_value, declared, setting
from myllm.config.settings import STEPS_LIMIT, ModelConfig, TrainConfig, model_defaults
from myllm.data.sampler import BatchSampler
from myllm.errors import UserError
from myllm.train.memory import check_step_fits, memory_limit

VOCAB_SIZE = 65  # Tiny Shakespeare's character vocabulary
SYNTHETIC_TOKENS = 200_000  # speed does not depend on the text: seeded random tokens
BATCHED_SAMPLES = 8
PROMPT_IDS = [0]  # generation starts from a 1-token prompt
MATMUL_SIZE = 2048  # square matmul for the measured peak, in the dtype in use
SWEEP_SQUARES = (512, 1024)  # smaller squares of the peak's sweep (those below matmul_size)
REPEATS_LIMIT = 1000  # medians of more repeats than this say nothing new


@dataclass(frozen=True)
class Preset:
    """A model and batch size for `--config`, with step counts that keep the run short."""

    d_model: int
    n_layers: int
    n_heads: int
    block_size: int
    batch_size: int
    steps: int
    warmup: int
    repeats: int


MODEL_DEFAULTS = model_defaults()
PRESETS = {
    "tiny": Preset(d_model=64, n_layers=2, n_heads=4, block_size=32, batch_size=8,
                   steps=10, warmup=2, repeats=3),
    "baby": Preset(d_model=128, n_layers=4, n_heads=4, block_size=64, batch_size=12,
                   steps=5, warmup=2, repeats=3),
    # The model `myllm train` builds by default, at a smaller batch to keep the run short.
    "default": Preset(d_model=MODEL_DEFAULTS["d_model"], n_layers=MODEL_DEFAULTS["n_layers"],
                      n_heads=MODEL_DEFAULTS["n_heads"], block_size=TrainConfig.block_size,
                      batch_size=16, steps=1, warmup=1, repeats=3),
}  # fmt: skip


@dataclass
class BenchSettings:
    """What `myllm bench` was asked for; `None` means the preset's value."""

    backends: list[str] | None = None
    config: str = "default"
    d_model: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    block_size: int | None = None
    batch_size: int | None = None
    steps: int | None = setting(None, "timed steps per repeat", low=1, high=STEPS_LIMIT)
    warmup: int | None = setting(None, "untimed steps first", low=0, high=STEPS_LIMIT)
    repeats: int | None = setting(None, "timed repeats", low=1, high=REPEATS_LIMIT)
    gen_tokens: int = setting(128, "tokens per generation", low=1, high=TOKENS_LIMIT)
    device: str = "auto"
    seed: int = TrainConfig.seed
    # Not a CLI flag: the tests use a small one to stay fast.
    matmul_size: int = setting(MATMUL_SIZE, "matmul peak's square", low=1, high=2**16, flag="")
    dtype: str = "auto"  # one value of `myllm bench --dtype` (run_matrix interleaves them)
    compile: str = "auto"  # one value of `myllm bench --compile`
    dropout: float | None = None  # one value of `myllm bench --dropout`; None: the model's


@dataclass
class BenchPlan:
    """The resolved run: model, batch size and how many steps each measurement takes."""

    config_name: str
    model_config: ModelConfig
    batch_size: int
    steps: int
    warmup: int
    repeats: int
    gen_tokens: int
    device: str
    seed: int
    matmul_size: int
    dtype: str = "auto"
    compile: str = "auto"

    @property
    def block_size(self) -> int:
        return self.model_config.max_seq_len

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config_name,
            "model_config": self.model_config.to_dict(),
            "batch_size": self.batch_size,
            "block_size": self.block_size,
            "steps": self.steps,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "gen_tokens": self.gen_tokens,
            "batched_samples": BATCHED_SAMPLES,
            "prompt_tokens": len(PROMPT_IDS),
            "matmul_size": self.matmul_size,
            "device": self.device,
            "seed": self.seed,
            "dtype": self.dtype,  # as asked; each backend's report has the resolved one
            "compile": self.compile,
            "data": f"synthetic: {SYNTHETIC_TOKENS} seeded random tokens, vocab {VOCAB_SIZE}",
        }


def resolve_plan(settings: BenchSettings) -> BenchPlan:
    """The preset of `settings.config` with the given overrides, validated."""
    if settings.config not in PRESETS:
        raise UserError(
            f"unknown bench config {settings.config!r}: use one of {', '.join(PRESETS)}"
        )
    preset = PRESETS[settings.config]

    def chosen(name: str) -> Any:
        value = getattr(settings, name)
        return getattr(preset, name) if value is None else value

    check_fields(settings)  # the bench's own counts; the shape by the training declarations
    batch_size = declared(TrainConfig)["batch_size"]
    check_value("batch_size", batch_size[0], batch_size[1], chosen("batch_size"))
    model_config = ModelConfig(
        vocab_size=VOCAB_SIZE,
        d_model=chosen("d_model"),
        n_heads=chosen("n_heads"),
        n_layers=chosen("n_layers"),
        max_seq_len=chosen("block_size"),
        dropout=MODEL_DEFAULTS["dropout"] if settings.dropout is None else settings.dropout,
    )
    if model_config.max_seq_len >= SYNTHETIC_TOKENS:  # issue 23 #6: checked before any work
        raise UserError(f"--block-size must be below bench's {SYNTHETIC_TOKENS:,} tokens: lower it")
    limit = memory_limit(settings.device)
    check_step_fits(model_config, chosen("batch_size"), model_config.max_seq_len, limit)
    return BenchPlan(
        config_name=settings.config,
        model_config=model_config,
        batch_size=chosen("batch_size"),
        steps=chosen("steps"),
        warmup=chosen("warmup"),
        repeats=chosen("repeats"),
        gen_tokens=settings.gen_tokens,
        device=settings.device,
        seed=settings.seed,
        matmul_size=settings.matmul_size,
        dtype=check_dtype(settings.dtype),
        compile=check_compile(settings.compile),
    )


def make_batches(plan: BenchPlan) -> list[tuple[np.ndarray, np.ndarray]]:
    """Warm-up and timed batches from the shared sampler: identical for every backend."""
    rng = np.random.default_rng(plan.seed)
    tokens = rng.integers(0, VOCAB_SIZE, size=SYNTHETIC_TOKENS, dtype=np.int32)
    sampler = BatchSampler(tokens, plan.block_size, plan.batch_size, plan.seed)
    count = max(1, plan.warmup) + plan.repeats * plan.steps
    return [sampler.batch(step) for step in range(count)]


def sweep_shapes(plan: BenchPlan) -> list[tuple[int, int, int]]:
    """(m, k, n) of the matmul peak's sweep besides the big square: smaller squares and the
    model's own GEMMs (forward: tokens x d_model by the projections, the feed-forward and the
    lm_head; backward's weight gradients: d_model x tokens by tokens x d_model / d_ff)."""
    tokens = plan.batch_size * plan.block_size
    config = plan.model_config
    d_model, d_ff, vocab = config.d_model, config.d_ff, config.vocab_size
    squares = [(s, s, s) for s in SWEEP_SQUARES if s < plan.matmul_size]
    model = [
        (tokens, d_model, d_model),
        (tokens, d_model, d_ff),
        (tokens, d_ff, d_model),
        (tokens, d_model, vocab),
        (d_model, tokens, d_model),
        (d_model, tokens, d_ff),
    ]
    return squares + list(dict.fromkeys(model))
