"""Mixed precision and compilation for the torch backend: autocast, loss scaling, torch.compile.

The weights and AdamW state stay float32 (the master copy); autocast runs the matmuls of the
forward and backward in the low dtype and keeps the loss and reductions in float32. float16
needs a loss scale (its range is small); bfloat16 has float32's range and needs none.
"""

from __future__ import annotations

import contextlib

import torch

from myllm.backend.precision import DeviceFacts, Precision, check_compile, choose_dtype
from myllm.config.settings import TrainConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def device_facts(device: torch.device) -> DeviceFacts:
    """bfloat16 is the fast path on CUDA GPUs that support it and on Apple GPUs (MPS)."""
    if device.type == "cuda":
        return DeviceFacts("cuda", torch.cuda.is_bf16_supported())
    return DeviceFacts(device.type, device.type == "mps")


def resolve_precision(config: TrainConfig, device: torch.device) -> Precision:
    """`auto` dtype per device (myllm.backend.precision); `auto` compile = on for CUDA only:
    measured slower than eager on a CPU (benchmarks/README.md) and not worth it on MPS."""
    dtype = choose_dtype(config.dtype, device_facts(device))
    compile_choice = check_compile(config.compile)
    compile_on = compile_choice == "on" or (compile_choice == "auto" and device.type == "cuda")
    return Precision(dtype, compile_on, "torch.compile")


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
