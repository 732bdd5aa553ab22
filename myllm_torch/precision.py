"""Mixed precision and compilation for the torch backend: autocast, loss scaling, torch.compile.

The weights and AdamW state stay float32 (the master copy); autocast runs the matmuls of the
forward and backward in the low dtype and keeps the loss and reductions in float32. float16
needs a loss scale (its range is small); bfloat16 has float32's range and needs none.
"""

from __future__ import annotations

import contextlib

import torch

from myllm.backend.precision import (
    DeviceFacts,
    Precision,
    check_compile,
    native_bf16_flags,
    resolve_dtypes,
)
from myllm.config.settings import TrainConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def device_facts(device: torch.device) -> DeviceFacts:
    """bfloat16 is the fast path on CUDA GPUs that support it, on Apple GPUs (MPS) and on CPUs
    that compute it natively (AMX-BF16 / AVX512-BF16: oneDNN's bf16 matmuls, ~1.7x a float32
    training step on a Sapphire Rapids, benchmarks/README.md)."""
    if device.type == "cuda":
        fast = torch.cuda.is_bf16_supported()
        return DeviceFacts("cuda", fast, f"this CUDA GPU {'has' if fast else 'lacks'} bfloat16")
    if device.type == "mps":
        return DeviceFacts("mps", True, "bfloat16 is the Apple GPU's fast path")
    native = native_bf16_flags()
    if native:
        return DeviceFacts("cpu", True, f"the CPU computes bfloat16 natively ({', '.join(native)})")
    return DeviceFacts("cpu", False, "the CPU has no native bfloat16 (no amx_bf16, avx512_bf16)")


def resolve_precision(config: TrainConfig, device: torch.device) -> Precision:
    """`auto` dtype per device (myllm.backend.precision); `auto` compile = on for CUDA only:
    measured slower than eager on a CPU (benchmarks/README.md) and not worth it on MPS."""
    dtypes = resolve_dtypes(config.dtype, device_facts(device))
    compile_choice = check_compile(config.compile)
    compile_on = compile_choice == "on" or (compile_choice == "auto" and device.type == "cuda")
    return Precision(compile=compile_on, compiler="torch.compile", **dtypes)


def autocast(device: torch.device, dtype: str):
    """torch.autocast in the low dtype; nothing at all at float32 (the numbers stay bit-exact)."""
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def loss_scaler(device: torch.device, dtype: str) -> torch.amp.GradScaler | None:
    """A dynamic loss scale for float16 (halved on overflow, doubled after 2000 good steps);
    None for float32 and bfloat16, which need none."""
    if dtype != "float16":
        return None
    return torch.amp.GradScaler(device.type)
