"""Device choice for the torch backend: auto = MPS > CUDA > CPU."""

from __future__ import annotations

import torch

from myllm.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch.device for `name`, or a UserError when it is unknown or not available here."""
    if name == "auto":
        if torch.backends.mps.is_available():
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda")
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
