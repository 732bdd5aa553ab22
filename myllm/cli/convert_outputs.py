"""What `myllm convert` may write: never another run's checkpoint, never a file without
--overwrite, and a tokenizer.json beside the output that is the model's own (said in one line)."""

from __future__ import annotations

from pathlib import Path

from myllm.backend.registry import CHECKPOINT_SUFFIXES
from myllm.data.tokenizers import Tokenizer, load_tokenizer
from myllm.errors import UserError
from myllm.run.files import RUN_INFO, is_run_checkpoint, tokenizer_beside


def check_file_destination(path: Path, overwrite: bool) -> None:
    """A file convert may write: not a run's own checkpoint (ever), not an existing file unless
    --overwrite, not a directory."""
    if is_run_checkpoint(path, tuple(CHECKPOINT_SUFFIXES)) and (path.parent / RUN_INFO).is_file():
        raise UserError(
            f"{path} is the checkpoint of the run in {path.parent} (its train --resume reads "
            "it): convert into another file name or directory"
        )
    if path.is_dir():
        raise UserError(f"{path} is a directory: name the file to write, e.g. {path / 'model'}")
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists: pass --overwrite to replace it, or name another file")


def check_directory_destination(directory: Path, overwrite: bool) -> None:
    """A model directory convert may write: new or empty, or --overwrite (then only the files it
    writes are replaced); never a run directory (its tokenizer.json is the run's)."""
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} is a file: name a directory for the model")
    if (directory / RUN_INFO).is_file():
        raise UserError(
            f"{directory} is a training run's directory: write the model into another directory"
        )
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise UserError(
            f"{directory} exists and is not empty: pass --overwrite to replace the model files "
            "in it (other files stay), or name another directory"
        )


def read_tokenizer_beside(checkpoint: Path) -> Tokenizer | None:
    """The tokenizer.json beside a checkpoint, or None when there is none."""
    path = tokenizer_beside(checkpoint)
    return load_tokenizer(path) if path.is_file() else None


def check_tokenizer_place(tokenizer: Tokenizer | None, destination: Path) -> None:
    """Before anything is written: the tokenizer.json already beside `destination`, if any,
    must be this model's vocabulary."""
    target = tokenizer_beside(destination)
    if tokenizer is None or not target.exists():
        return
    if load_tokenizer(target).to_json() != tokenizer.to_json():
        raise UserError(
            f"{target} holds another vocabulary than the model's: the converted checkpoint "
            "would decode through the wrong tokenizer; convert into another directory"
        )


def place_tokenizer(tokenizer: Tokenizer | None, source: Path, destination: Path) -> str:
    """Write the tokenizer.json beside `destination` when it is not there; say what was done."""
    target = tokenizer_beside(destination)
    if tokenizer is None:
        return (
            f"; no tokenizer.json: {source} has none beside it, so generate and eval will "
            "need --tokenizer PATH"
        )
    if target.exists():
        return f"; {target} already holds its vocabulary"
    tokenizer.save(target)
    return f" and its tokenizer {target}"
