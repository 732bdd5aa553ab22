"""Reading and writing checkpoints: the format from the file's extension, validated, atomic.

Safetensors is written by the core; a backend's own format (torch's `.pt` dict of the reference)
comes from the backend registry. Conversion is then reading one format and writing the other: a
change of container, never a renaming guess.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from myllm.atomic import atomic_write
from myllm.backend.contract import CheckpointFormat
from myllm.backend.registry import load_backend, native_backend
from myllm.checkpoint.checksums import tensor_checksums, verify_checksums
from myllm.checkpoint.safetensors_format import SAFETENSORS
from myllm.checkpoint.state import Checkpoint, checkpoint_tensors
from myllm.checkpoint.validation import validate_extras, validate_weights
from myllm.errors import UserError


def checkpoint_format(path: Path) -> CheckpointFormat:
    """The format of `path` from its extension, or a UserError naming the known extensions.

    Safetensors needs no framework; another backend's format is that backend's to read and write.
    """
    name = native_backend(path)
    if path.suffix == SAFETENSORS.suffix:
        return SAFETENSORS
    return load_backend(name).checkpoint_format


def write_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` atomically in the format its extension names.

    Serialized in memory first: a failed disk write (disk full) is then a plain OSError, which
    atomic_write reports in one line, not an error from inside torch or safetensors.
    """
    path = Path(path)
    validate_weights(checkpoint.weights, checkpoint.model_config, path)
    checksums = tensor_checksums(checkpoint_tensors(checkpoint))
    checkpoint = dataclasses.replace(checkpoint, checksums=checksums)
    serialize = checkpoint_format(path).to_bytes
    atomic_write(path, lambda temp: temp.write_bytes(serialize(checkpoint)))


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate a checkpoint of either format; never runs code from the file."""
    path = Path(path)
    fmt = checkpoint_format(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} not found: pass the path of an existing checkpoint file"
        )
    checkpoint = fmt.read(path)
    validate_weights(checkpoint.weights, checkpoint.model_config, path)
    validate_extras(checkpoint, path)
    verify_checksums(checkpoint_tensors(checkpoint), checkpoint.checksums, path)
    return checkpoint
