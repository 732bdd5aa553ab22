"""Which dtype the training compute runs in, and whether the step is compiled: the choice rules.

The master weights and the AdamW state are float32 whatever is chosen, so checkpoints, conversion
and resume do not depend on it; only the forward/backward arithmetic runs in the low dtype. The
backends' precision.py apply the choice; this module only decides it, from plain facts about the
device, so both backends decide alike.

The TF32 switch lives here too: `--tf32` (or MYLLM_TF32=1) lets float32 matmuls run in TF32 on
GPUs that have it; MLX must see its own switch before its first GPU matmul, so myllm_mlx reads
MYLLM_TF32 when it is imported (myllm_mlx/tf32.py) and the trainers then apply TrainConfig.tf32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from myllm.errors import UserError

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
COMPILE_CHOICES = ("auto", "on", "off")

# MLX's CPU backend has no fast low-precision GEMM: the measured ratio of a bfloat16 to a float32
# matmul, quoted in the warning (the machine and command: benchmarks/README.md).
MLX_CPU_BF16_SLOWDOWN = 35


# CPU feature flags (Linux /proc/cpuinfo) of the instructions that compute bfloat16 natively.
NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class DeviceFacts:
    """What the dtype and compile choices depend on, as a backend sees its device."""

    kind: str  # "cpu", "cuda", "mps" (torch) or "gpu", "cpu" (MLX)
    bf16_fast: bool  # bfloat16 is the device's fast path (CUDA with bf16, Apple GPU, AMX CPU)
    why: str = ""  # the fact behind bf16_fast, in words: printed and recorded with the choice


@dataclass(frozen=True)
class Precision:
    """A backend's resolved choices for one run: the compute dtype and whether the step compiles.

    `compiler` names the backend's compiler (torch.compile, mx.compile) for logs and bench."""

    dtype: str
    compile: bool
    compiler: str
    warning: str | None = None  # said once at the start of a run (MLX: bfloat16 on a CPU)
    reason: str = ""  # why this dtype: "--dtype float32", or auto's rule and the device fact
    decode_dtype: str = "float32"  # what the trainer's Decoder computes in (auto: see choose_dtype)

    @property
    def low(self) -> bool:
        return self.dtype != "float32"

    def record(self) -> dict[str, str]:
        """The dtype choice for run.json: what, why, and what the run's Decoder computes in."""
        return {"dtype": self.dtype, "dtype_reason": self.reason, "decode_dtype": self.decode_dtype}

    def describe(self) -> str:
        compiled = self.compiler if self.compile else "eager"
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.dtype} compute (float32 weights){why}, {compiled}"


def check_dtype(name: str) -> str:
    if name not in DTYPE_CHOICES:
        raise UserError(f"unknown dtype {name!r}: use --dtype {' or '.join(DTYPE_CHOICES)}")
    return name


def check_compile(name: str) -> str:
    if name not in COMPILE_CHOICES:
        raise UserError(f"unknown compile choice {name!r}: use --compile auto, on or off")
    return name


def choose_dtype(requested: str, facts: DeviceFacts, decoding: bool = False) -> str:
    """The dtype to compute in (see dtype_reason for the why, in words).

    `auto` is bfloat16 where the device computes it fast (GPUs with bf16, CPUs with AMX-BF16 or
    AVX512-BF16 under torch), float32 elsewhere. Decoding on a CPU stays float32 under auto: at
    batch 1 a bfloat16 cached step is slower there (casts and small matmuls, benchmarks/README.md).
    """
    check_dtype(requested)
    if requested != "auto":
        return requested
    if decoding and facts.kind == "cpu":
        return "float32"
    return "bfloat16" if facts.bf16_fast else "float32"


def dtype_reason(requested: str, facts: DeviceFacts, decoding: bool = False) -> str:
    """Why choose_dtype chose what it chose, for the run's log, run.json and bench."""
    if requested != "auto":
        return f"--dtype {requested}"
    if decoding and facts.kind == "cpu":
        return "auto: decoding on a CPU stays float32 (bfloat16 is slower at batch 1 there)"
    return f"auto: {facts.why}" if facts.why else "auto"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16_flags(flags: set[str] | None = None) -> list[str]:
    """Which of the CPU's flags say it computes bfloat16 natively (none: it emulates it)."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in NATIVE_BF16_CPU_FLAGS if flag in flags]


def resolve_dtypes(requested: str, facts: DeviceFacts) -> dict[str, str]:
    """Precision's dtype fields for training at `requested` on a device with `facts`."""
    return {
        "dtype": choose_dtype(requested, facts),
        "reason": dtype_reason(requested, facts),
        "decode_dtype": choose_dtype(requested, facts, decoding=True),
    }


def parse_list(text: str, check) -> list[str]:
    """'float32,bfloat16' -> ['float32', 'bfloat16'], each checked (bench's matrix options)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    return [check(name) for name in names]


TF32_ENV = "MYLLM_TF32"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def tf32_from_environment() -> bool:
    """MYLLM_TF32 as a bool (unset: False); a value that is neither yes nor no is a UserError."""
    value = os.environ.get(TF32_ENV, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise UserError(f"{TF32_ENV}={value!r} is not a yes/no value: set it to 1 or 0")
