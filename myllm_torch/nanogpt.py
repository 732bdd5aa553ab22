"""nanoGPT's ckpt.pt, read and written with torch: the pickle only, the mapping is the core's.

myllm/interop/nanogpt.py turns nanoGPT's dict into a myllm Checkpoint and back, on numpy arrays;
this module converts its tensors at the edge. Reading goes through checkpoint_format.load_pt, so
a pickle that asks to run code is refused here exactly as for myllm's own .pt files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from myllm.atomic import atomic_write
from myllm.checkpoint.state import Checkpoint
from myllm.interop.nanogpt import checkpoint_from_nanogpt, is_nanogpt_payload, nanogpt_payload
from myllm_torch.checkpoint_format import load_pt


def is_nanogpt_checkpoint(path: Path) -> bool:
    """True when `path` holds nanoGPT's dict (model_args and model), not myllm's."""
    return is_nanogpt_payload(load_pt(path))


def read_nanogpt(path: Path) -> Checkpoint:
    """A myllm Checkpoint holding the weights (and AdamW moments) of nanoGPT's ckpt.pt."""
    return checkpoint_from_nanogpt(to_numpy(load_pt(path)), path)


def write_nanogpt(path: Path, checkpoint: Checkpoint, dataset: str) -> None:
    """Write what nanoGPT's sample.py (and train.py --init_from=resume) reads, atomically."""
    payload = to_torch(nanogpt_payload(checkpoint, dataset), {})
    atomic_write(path, lambda temp: torch.save(payload, temp))


def to_numpy(value: Any) -> Any:
    """The payload with every tensor a numpy array (floating ones as float32), the rest as is."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        return (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    if isinstance(value, dict):
        return {key: to_numpy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_numpy(item) for item in value)
    return value


def to_torch(value: Any, made: dict[int, torch.Tensor]) -> Any:
    """The payload with every numpy array a tensor; one array met twice (the tied lm_head) is
    one tensor, which torch.save stores once."""
    if isinstance(value, np.ndarray):
        if id(value) not in made:
            made[id(value)] = torch.from_numpy(value)
        return made[id(value)]
    if isinstance(value, dict):
        return {key: to_torch(item, made) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_torch(item, made) for item in value)
    return value
