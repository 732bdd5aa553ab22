"""Device choice for the torch backend: auto = MPS > CUDA > CPU."""

from __future__ import annotations

import torch

from myllm.errors import UserError

# "gpu" (MLX's name) is the accelerator here, MPS or CUDA, so MLX's --device values carry over.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps", "gpu")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch.device for `name`, or a UserError when it is unknown or not available here."""
    if name in ("auto", "gpu"):
        if torch.backends.mps.is_available():
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda")
        if name == "gpu":
            raise UserError(
                "device 'gpu' is not available on this machine (no MPS or CUDA in this torch "
                "build): use --device cpu or auto"
            )
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise UserError(f"unknown device {name!r}: use one of {', '.join(DEVICE_CHOICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' is not available on this machine: use --device cpu or auto")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise UserError("device 'mps' is not available on this machine: use --device cpu or auto")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A human name for the device, e.g. 'cpu (8 threads)' or 'cuda (NVIDIA H200)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def synchronize(device: torch.device) -> None:
    """Wait for queued work on `device` (timing only; the training step never calls it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def set_matmul_precision(tf32: bool) -> str:
    """float32 matmuls in float32 ("highest"), or in TF32 on CUDA ("high"); returns which.

    One process-wide switch (torch.set_float32_matmul_precision, the same flag as
    torch.backends.cuda.matmul.allow_tf32). MPS and CPU compute float32 matmuls in float32 either
    way."""
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return matmul_precision()


def matmul_precision() -> str:
    """'tf32' or 'float32': how float32 matmuls run on a GPU that has TF32, read back from torch."""
    return "tf32" if torch.get_float32_matmul_precision() != "highest" else "float32"
