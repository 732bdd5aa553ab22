"""Checkpoints between torch, MLX and nanoGPT: `myllm convert`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from myllm.cli.app import _choices, app, err_console
from myllm.errors import UserError

# --- convert ---


@app.command()
def convert(
    source: Annotated[
        Path, typer.Argument(help="checkpoint to read (.pt or .safetensors; nanoGPT's ckpt.pt)")
    ],
    destination: Annotated[Path, typer.Argument(help="checkpoint to write (.pt or .safetensors)")],
    to: Annotated[
        str,
        typer.Option(
            help="myllm, or nanogpt: a ckpt.pt and meta.pkl for nanoGPT",
            **_choices("myllm", "nanogpt"),
        ),
    ] = "myllm",
    meta: Annotated[
        Path | None,
        typer.Option(help="nanoGPT source: its meta.pkl (default: meta.pkl beside SOURCE)"),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="--to nanogpt: config.dataset, sample.py reads data/NAME/meta.pkl")
    ] = "myllm",
) -> None:
    """Convert a checkpoint between torch (.pt), MLX (.safetensors) and nanoGPT (ckpt.pt).

    A nanoGPT source is recognised from its keys (model_args, model) and needs its meta.pkl.
    """
    from myllm.checkpoint.io import checkpoint_format, read_checkpoint, write_checkpoint
    from myllm.run.files import tokenizer_beside

    checkpoint_format(destination)
    if destination.resolve() == source.resolve():
        raise UserError(f"source and destination are the same file {source}: pick another DST")
    if to not in ("myllm", "nanogpt"):
        raise UserError(f"unknown --to {to!r}: use myllm or nanogpt")
    if to == "nanogpt":
        _convert_to_nanogpt(source, destination, dataset)
        return
    if source.suffix == ".pt" and _is_nanogpt(source):
        _convert_from_nanogpt(source, destination, meta or source.parent / "meta.pkl")
        return
    tokenizer_source = tokenizer_beside(source)
    tokenizer_destination = tokenizer_beside(destination)
    copy_tokenizer = tokenizer_source.is_file() and not tokenizer_destination.exists()
    if tokenizer_source.is_file() and tokenizer_destination.exists():
        check_same_tokenizer(tokenizer_source, tokenizer_destination)
    write_checkpoint(destination, read_checkpoint(source))
    copied = ""
    if copy_tokenizer:
        shutil.copyfile(tokenizer_source, tokenizer_destination)
        copied = f" and {tokenizer_destination}"
    err_console.print(f"Wrote {destination}{copied}.")


def check_same_tokenizer(source: Path, destination: Path) -> None:
    """convert beside another run's tokenizer.json: only when it is the same vocabulary."""
    from myllm.data.tokenizers import load_tokenizer

    if source.resolve() == destination.resolve():
        return
    if load_tokenizer(source).to_json() != load_tokenizer(destination).to_json():
        raise UserError(
            f"{destination} holds another vocabulary than {source}: the converted checkpoint "
            "would decode through the wrong tokenizer; convert into another folder"
        )


def _is_nanogpt(source: Path) -> bool:
    from myllm.backend.registry import backend_module, is_installed

    return is_installed("torch") and backend_module("torch", "nanogpt").is_nanogpt_checkpoint(
        source
    )


def _convert_from_nanogpt(source: Path, destination: Path, meta: Path) -> None:
    from myllm.backend.registry import backend_module
    from myllm.checkpoint.io import write_checkpoint
    from myllm.data.tokenizers import load_tokenizer
    from myllm.interop.nanogpt_meta import read_meta
    from myllm.run.files import tokenizer_beside

    tokenizer = read_meta(meta)
    checkpoint = backend_module("torch", "nanogpt").read_nanogpt(source)
    if tokenizer.vocab_size != checkpoint.model_config.vocab_size:
        raise UserError(
            f"{meta} has {tokenizer.vocab_size} characters but {source} has vocab_size "
            f"{checkpoint.model_config.vocab_size}: pass the meta.pkl of its dataset with --meta"
        )
    tokenizer_path = tokenizer_beside(destination)
    if tokenizer_path.exists() and load_tokenizer(tokenizer_path).vocabulary != tokenizer.chars:
        raise UserError(
            f"{tokenizer_path} exists with another vocabulary: write DST to another directory"
        )
    write_checkpoint(destination, checkpoint)
    tokenizer.save(tokenizer_path)
    err_console.print(f"Wrote {destination} and {tokenizer_path} (from nanoGPT).")


def _convert_to_nanogpt(source: Path, destination: Path, dataset: str) -> None:
    from myllm.backend.registry import backend_module
    from myllm.checkpoint.io import read_checkpoint
    from myllm.data.char_tokenizer import CharTokenizer
    from myllm.data.tokenizers import load_tokenizer
    from myllm.interop.nanogpt_meta import write_meta
    from myllm.run.files import tokenizer_beside
    from myllm.train.resume import check_tokenizer_matches

    if destination.suffix != ".pt":
        raise UserError(f"nanoGPT reads a .pt file, not {destination}: name DST e.g. out/ckpt.pt")
    if not dataset.strip():
        raise UserError("--dataset is empty: name nanoGPT's data folder, e.g. --dataset myllm")
    checkpoint = read_checkpoint(source)
    tokenizer = load_tokenizer(tokenizer_beside(source))
    check_tokenizer_matches(tokenizer, checkpoint.model_config, source)
    if not isinstance(tokenizer, CharTokenizer):  # meta.pkl maps characters
        raise UserError(f"{source} is a byte-mode run: nanoGPT's meta.pkl holds characters only")
    backend_module("torch", "nanogpt").write_nanogpt(destination, checkpoint, dataset)
    meta_path = destination.parent / "meta.pkl"
    write_meta(meta_path, tokenizer)
    err_console.print(
        f"Wrote {destination} and {meta_path}; nanoGPT's sample.py reads "
        f"data/{dataset}/meta.pkl: copy {meta_path} there.",
        soft_wrap=True,
    )
