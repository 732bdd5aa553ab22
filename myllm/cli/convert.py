"""Checkpoints between torch, MLX, nanoGPT, Hugging Face and GGUF: `myllm convert`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from myllm.cli.app import _choices, app, err_console
from myllm.cli.convert_outputs import (
    check_directory_destination,
    check_file_destination,
    check_tokenizer_place,
    place_tokenizer,
    read_tokenizer_beside,
)
from myllm.errors import UserError
from myllm.run.files import tokenizer_beside

TARGETS = ("myllm", "nanogpt", "hf", "gguf")
OUTTYPES = ("f32", "f16")  # myllm.interop.gguf.OUTTYPES, without importing the gguf package
TANH_NOTE = (
    "{tool} computes GELU's tanh form and this model was trained with the exact GELU: its "
    "logits there differ slightly (train with --activation gelu_tanh for an exact match)"
)

# --- convert ---


SourceArgument = Annotated[
    Path,
    typer.Argument(
        help="checkpoint to read (.pt or .safetensors; nanoGPT's ckpt.pt), or a Hugging Face "
        "GPT-2 model directory"
    ),
]
DestinationArgument = Annotated[
    Path, typer.Argument(help="what to write: a .pt or .safetensors, a directory (hf), a .gguf")
]


@app.command()
def convert(
    source: SourceArgument,
    destination: DestinationArgument,
    to: Annotated[
        str,
        typer.Option(
            help="myllm; nanogpt: a ckpt.pt and meta.pkl; hf: a transformers / mlx-lm model "
            "directory; gguf: a llama.cpp file",
            **_choices(*TARGETS),
        ),
    ] = "myllm",
    outtype: Annotated[
        str,
        typer.Option(
            help="--to gguf: weight matrices in float32 or float16", **_choices(*OUTTYPES)
        ),
    ] = "f32",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace existing output files")
    ] = False,
    meta: Annotated[
        Path | None,
        typer.Option(help="nanoGPT source: its meta.pkl (default: meta.pkl beside SOURCE)"),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="--to nanogpt: config.dataset, sample.py reads data/NAME/meta.pkl")
    ] = "myllm",
) -> None:
    """Convert a model between torch (.pt), MLX (.safetensors), nanoGPT (ckpt.pt), Hugging Face
    (a GPT-2 directory, both ways) and GGUF (llama.cpp).

    A nanoGPT source is recognised from its keys (model_args, model) and needs its meta.pkl; a
    directory SOURCE is a Hugging Face model. Existing files are replaced only with --overwrite,
    and a run's own checkpoints never.
    """
    if to not in TARGETS:
        raise UserError(f"unknown --to {to!r}: use {', '.join(TARGETS)}")
    if outtype not in OUTTYPES:
        raise UserError(f"unknown --outtype {outtype!r}: use f32 or f16")
    if destination.resolve() == source.resolve():
        raise UserError(f"source and destination are the same file {source}: pick another DST")
    if to == "hf":
        _convert_to_hf(source, destination, overwrite)
    elif to == "gguf":
        _convert_to_gguf(source, destination, outtype, overwrite)
    elif to == "nanogpt":
        _convert_to_nanogpt(source, destination, dataset, overwrite)
    elif source.is_dir():
        _convert_from_hf(source, destination, overwrite)
    elif source.suffix == ".pt" and _is_nanogpt(source):
        _convert_from_nanogpt(source, destination, meta or source.parent / "meta.pkl", overwrite)
    else:
        _convert_checkpoint(source, destination, overwrite)


def _check_checkpoint_destination(destination: Path, overwrite: bool) -> None:
    from myllm.checkpoint.io import checkpoint_format

    checkpoint_format(destination)
    check_file_destination(destination, overwrite)


def _convert_checkpoint(source: Path, destination: Path, overwrite: bool) -> None:
    from myllm.checkpoint.io import read_checkpoint, write_checkpoint

    _check_checkpoint_destination(destination, overwrite)
    tokenizer = read_tokenizer_beside(source)
    check_tokenizer_place(tokenizer, destination)
    write_checkpoint(destination, read_checkpoint(source))
    said = place_tokenizer(tokenizer, source, destination)
    err_console.print(f"Wrote {destination}{said}.", soft_wrap=True)


def _convert_from_hf(source: Path, destination: Path, overwrite: bool) -> None:
    from myllm.checkpoint.io import write_checkpoint
    from myllm.interop.hf import read_hf

    _check_checkpoint_destination(destination, overwrite)
    checkpoint, tokenizer = read_hf(source)
    check_tokenizer_place(tokenizer, destination)
    write_checkpoint(destination, checkpoint)
    said = place_tokenizer(tokenizer, source, destination)
    err_console.print(f"Wrote {destination}{said} (from {source}).", soft_wrap=True)


def _read_model(source: Path):
    """A myllm checkpoint and the tokenizer its run wrote beside it (needed by hf, gguf)."""
    from myllm.checkpoint.io import read_checkpoint
    from myllm.data.tokenizers import load_tokenizer
    from myllm.train.resume import check_tokenizer_matches

    if source.is_dir():
        raise UserError(f"{source} is a directory: pass a myllm checkpoint file as SOURCE")
    checkpoint = read_checkpoint(source)
    fix = "the model's vocabulary is its run's tokenizer.json: copy it beside SOURCE"
    tokenizer = load_tokenizer(tokenizer_beside(source), fix=fix)
    check_tokenizer_matches(tokenizer, checkpoint.model_config, source)
    return checkpoint, tokenizer


def _convert_to_hf(source: Path, destination: Path, overwrite: bool) -> None:
    from myllm.interop.hf import write_hf

    check_directory_destination(destination, overwrite)
    checkpoint, tokenizer = _read_model(source)
    write_hf(checkpoint, tokenizer, destination)
    config = checkpoint.model_config
    err_console.print(
        f"Wrote {destination} (config.json, model.safetensors, tokenizer.json, "
        "tokenizer_config.json): a GPT-2 model for transformers and mlx-lm.",
        soft_wrap=True,
    )
    if config.d_ff != 4 * config.d_model:
        err_console.print(
            f"mlx-lm's GPT-2 has a 4 * n_embd MLP and this model's d_ff is {config.d_ff}: it "
            "loads in transformers, not in mlx-lm.",
            soft_wrap=True,
        )
    elif config.activation == "gelu":
        err_console.print(TANH_NOTE.format(tool="mlx-lm's GPT-2") + ".", soft_wrap=True)


def _convert_to_gguf(source: Path, destination: Path, outtype: str, overwrite: bool) -> None:
    from myllm.interop.gguf import write_gguf

    if destination.suffix != ".gguf":
        raise UserError(f"--to gguf writes a .gguf file, not {destination}: name it e.g. out.gguf")
    check_file_destination(destination, overwrite)
    checkpoint, tokenizer = _read_model(source)
    write_gguf(checkpoint, tokenizer, destination, outtype)
    err_console.print(f"Wrote {destination} ({outtype}, GGUF arch gpt2).", soft_wrap=True)
    if checkpoint.model_config.activation == "gelu":
        err_console.print(TANH_NOTE.format(tool="llama.cpp") + ".", soft_wrap=True)


def _is_nanogpt(source: Path) -> bool:
    from myllm.backend.registry import backend_module, is_installed

    return is_installed("torch") and backend_module("torch", "nanogpt").is_nanogpt_checkpoint(
        source
    )


def _convert_from_nanogpt(source: Path, destination: Path, meta: Path, overwrite: bool) -> None:
    from myllm.backend.registry import backend_module
    from myllm.checkpoint.io import write_checkpoint
    from myllm.interop.nanogpt_meta import read_meta

    _check_checkpoint_destination(destination, overwrite)
    tokenizer = read_meta(meta)
    checkpoint = backend_module("torch", "nanogpt").read_nanogpt(source)
    if tokenizer.vocab_size != checkpoint.model_config.vocab_size:
        raise UserError(
            f"{meta} has {tokenizer.vocab_size} characters but {source} has vocab_size "
            f"{checkpoint.model_config.vocab_size}: pass the meta.pkl of its dataset with --meta"
        )
    check_tokenizer_place(tokenizer, destination)
    write_checkpoint(destination, checkpoint)
    said = place_tokenizer(tokenizer, meta, destination)
    err_console.print(f"Wrote {destination}{said} (from nanoGPT).", soft_wrap=True)


def _convert_to_nanogpt(source: Path, destination: Path, dataset: str, overwrite: bool) -> None:
    from myllm.backend.registry import backend_module
    from myllm.checkpoint.io import read_checkpoint
    from myllm.data.char_tokenizer import CharTokenizer
    from myllm.data.tokenizers import load_tokenizer
    from myllm.interop.nanogpt_meta import write_meta
    from myllm.train.resume import check_tokenizer_matches

    if destination.suffix != ".pt":
        raise UserError(f"nanoGPT reads a .pt file, not {destination}: name DST e.g. out/ckpt.pt")
    if not dataset.strip():
        raise UserError("--dataset is empty: name nanoGPT's data folder, e.g. --dataset myllm")
    meta_path = destination.parent / "meta.pkl"
    check_file_destination(destination, overwrite)
    check_file_destination(meta_path, overwrite)
    checkpoint = read_checkpoint(source)
    if checkpoint.model_config.activation != "gelu":
        raise UserError(
            f"{source} computes GELU's tanh form ({checkpoint.model_config.activation}) and "
            "nanoGPT computes the exact GELU: convert it --to hf or --to gguf instead"
        )
    tokenizer = load_tokenizer(tokenizer_beside(source))
    check_tokenizer_matches(tokenizer, checkpoint.model_config, source)
    if not isinstance(tokenizer, CharTokenizer):  # meta.pkl maps characters
        raise UserError(f"{source} is a byte-mode run: nanoGPT's meta.pkl holds characters only")
    backend_module("torch", "nanogpt").write_nanogpt(destination, checkpoint, dataset)
    write_meta(meta_path, tokenizer)
    err_console.print(
        f"Wrote {destination} and {meta_path}; nanoGPT's sample.py reads "
        f"data/{dataset}/meta.pkl: copy {meta_path} there.",
        soft_wrap=True,
    )
