"""A checksum of every tensor of a checkpoint, written with it and verified when it is read.

Without one, a checkpoint whose tensor bytes were damaged on disk or in a copy still loads: it then
generates garbage or diverges when resumed. CRC-32 (zlib, in the standard library) is the check: it
catches every burst error up to 32 bits and any other damage but one in 2**32, at memory speed.
It does not defend against someone who rewrites the file on purpose (they could rewrite the
checksum too), and a cryptographic hash would be slower for nothing more against damage.

The checksums are keyed by the tensor names of the safetensors file (weights by their canonical
name, "optimizer.exp_avg.NAME", "optimizer.exp_avg_sq.NAME", "rng.BACKEND"), the same in both
formats, and computed from the framework-free Checkpoint, so the format code only stores the dict.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from myllm.errors import UserError

ALGORITHM = "crc32"


def tensor_checksum(array: np.ndarray) -> str:
    """'crc32:' and the CRC-32 of the array's raw bytes in C order, as 8 hex digits."""
    return f"{ALGORITHM}:{zlib.crc32(np.ascontiguousarray(array).data.cast('B')):08x}"


def tensor_checksums(tensors: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: tensor_checksum(array) for name, array in tensors.items()}


def verify_checksums(
    tensors: dict[str, np.ndarray], stored: dict[str, str] | None, path: Path
) -> None:
    """Compare every tensor with its stored checksum; checkpoints written without any pass."""
    if stored is None:
        return
    if not isinstance(stored, dict) or set(stored) != set(tensors):
        raise UserError(
            f"corrupt checkpoint {path}: its checksum list does not match its tensors; "
            "use another checkpoint, e.g. best_model"
        )
    for name, array in tensors.items():
        if tensor_checksum(array) != stored[name]:
            raise UserError(
                f"corrupt checkpoint {path}: tensor {name} does not match its checksum (the file "
                "was damaged after it was written); use another checkpoint, e.g. best_model"
            )
