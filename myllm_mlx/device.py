"""Device choice for the MLX backend: auto = GPU (Metal or CUDA) > CPU."""

from __future__ import annotations

import os

import mlx.core as mx

from myllm.errors import UserError
from myllm_mlx.blas import blas_in_use
from myllm_mlx.tf32 import TF32_ENV

# "cuda", "mps" and "metal" are accepted as the GPU too, so torch's --device values carry over.
DEVICE_CHOICES = ("auto", "cpu", "gpu")
GPU_ALIASES = ("cuda", "mps", "metal")


def resolve_device(name: str = "auto") -> mx.Device:
    """The mx.Device for `name`, made MLX's default device; UserError when unknown or missing."""
    kind = name.split(":")[0].lower()
    if kind in GPU_ALIASES:
        kind = "gpu"
    if kind not in DEVICE_CHOICES:
        choices = ", ".join(DEVICE_CHOICES + GPU_ALIASES)
        raise UserError(f"unknown device {name!r}: use one of {choices}")
    if kind == "auto":
        kind = "gpu" if mx.is_available(mx.gpu) else "cpu"
    if kind == "gpu" and not mx.is_available(mx.gpu):
        raise UserError(
            f"device {name!r} is not available on this machine (no Metal or CUDA GPU in this MLX "
            "build): use --device cpu or auto"
        )
    # MLX has no .to(device): arrays live in unified memory and ops run on the default device.
    device = mx.Device(mx.gpu if kind == "gpu" else mx.cpu)
    mx.set_default_device(device)
    if not mx.is_available(mx.gpu):
        cache_freed_buffers()
    return device


def cache_freed_buffers() -> None:
    """Let MLX's CPU allocator keep freed buffers up to its memory limit (as Metal's does).

    The CPU build caches only 32 MB, so each step's large temporaries go back to malloc and
    return as fresh pages that the kernel faults in and zeroes, several times slower than a cached
    buffer (benchmarks/README.md), and a training step pays it dozens of times."""
    mx.set_cache_limit(mx.get_memory_limit())


def describe_device(device: mx.Device) -> str:
    """A human name, e.g. 'gpu (Apple M2 Pro)' or 'cpu (8 cores, openblas)'."""
    if device.type == mx.gpu:
        name = mx.device_info(device).get("device_name", "")
        return f"gpu ({name})" if name else "gpu"
    return f"cpu ({os.cpu_count()} cores, {blas_in_use().split(' (')[0]})"  # path: blas_in_use()


def set_matmul_precision(tf32: bool) -> str:
    """float32 matmuls in float32, or in TF32 on a GPU (CUDA; Metal's NAX kernels); returns which.

    MLX reads MLX_ENABLE_TF32 (default on) once per process, at its first GPU matmul (a
    function-local static, enable_tf32() in mlx/utils.h): set here before the Trainer's first
    step, and by myllm_mlx/__init__.py from MYLLM_TF32 before mlx.core is imported. A later
    change in the same process does not reach MLX."""
    os.environ[TF32_ENV] = "1" if tf32 else "0"
    return matmul_precision()


def matmul_precision() -> str:
    """'tf32' or 'float32': how float32 matmuls run on a GPU, read back from MLX's setting."""
    return "tf32" if os.environ.get(TF32_ENV, "1") not in ("0", "") else "float32"
