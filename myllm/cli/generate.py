"""Sample from a checkpoint: `myllm generate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from myllm.cli.app import BACKENDS, DEVICE_HELP, DEVICES, app, err_console
from myllm.config.commands import GenerateOptions
from myllm.run.files import tokenizer_beside

# --- generate ---

LONG_GENERATION_SECONDS = 600  # a run longer than this is announced before the first token

# A checkpoint's commands run it on its own backend unless told otherwise.
CheckpointBackend = Annotated[
    str | None,
    typer.Option(help="(default: the checkpoint's own: .pt torch, .safetensors mlx)", **BACKENDS),
]


@app.command()
def generate(
    checkpoint: Annotated[Path, typer.Option(help="a .pt or .safetensors checkpoint")],
    tokenizer: Annotated[
        Path | None, typer.Option(help="(default: tokenizer.json beside the checkpoint)")
    ] = None,
    prompt: Annotated[str, typer.Option(help="text to continue")] = "",
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="characters to generate")
    ] = GenerateOptions.max_new_tokens,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = GenerateOptions.temperature,
    top_k: Annotated[int, typer.Option("--top-k", help="0 = off")] = GenerateOptions.top_k,
    top_p: Annotated[float, typer.Option("--top-p", help="1 = off")] = GenerateOptions.top_p,
    seed: Annotated[int | None, typer.Option(help="seed for reproducible sampling")] = None,
    num_samples: Annotated[
        int, typer.Option("--num-samples", min=1, help="continuations, generated as one batch")
    ] = 1,
    kv_cache: Annotated[
        bool,
        typer.Option("--kv-cache/--no-kv-cache", help="reuse keys/values (same text, faster)"),
    ] = True,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="drop prompt characters not in the vocabulary")
    ] = False,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="a REPL")] = False,
    backend: CheckpointBackend = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP, **DEVICES)] = "auto",
    dtype: Annotated[
        str, typer.Option(help="compute dtype: auto, float32, bfloat16, float16")
    ] = "auto",
) -> None:
    """Continue a prompt, or chat with the model in an interactive REPL."""
    from myllm.backend.precision import check_dtype
    from myllm.backend.registry import load_backend, native_backend
    from myllm.checkpoint.io import read_checkpoint
    from myllm.data.tokenizers import load_tokenizer
    from myllm.generate.budget import GenerationBudget
    from myllm.generate.repl import GenerationRequest, run_repl
    from myllm.generate.sampling import SamplingSettings
    from myllm.train.resume import check_tokenizer_matches

    GenerateOptions(max_new_tokens, temperature, top_k, top_p, seed, num_samples)
    loaded = read_checkpoint(checkpoint)
    char_tokenizer = load_tokenizer(tokenizer or tokenizer_beside(checkpoint))
    check_tokenizer_matches(char_tokenizer, loaded.model_config, checkpoint)
    check_dtype(dtype)
    settings = SamplingSettings(temperature, top_k, top_p, max_new_tokens)
    request = GenerationRequest(
        char_tokenizer, settings, np.random.default_rng(seed), num_samples, kv_cache, skip_unknown,
        GenerationBudget(loaded.model_config, device),
    )  # fmt: skip
    if not interactive:  # unknown characters and the cost: refused before the model loads
        seconds = request.check(prompt)
        if seconds > LONG_GENERATION_SECONDS:
            err_console.print(f"note: this generation takes at least {seconds / 60:,.0f} minutes")
    chosen = load_backend(backend or native_backend(checkpoint))
    decoder = chosen.load_decoder(loaded, device, dtype)
    if interactive:
        run_repl(decoder, request)
    else:
        generate_once(decoder, request, prompt)


def generate_once(decoder, request, prompt: str) -> None:
    """Stream one prompt's continuation to stdout; Ctrl-C ends it at exit code 130."""
    from myllm.generate.repl import generate_text

    if request.num_samples == 1:
        sys.stdout.write(prompt)
    try:
        generate_text(decoder, request, prompt, sys.stdout)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        raise typer.Exit(130) from None
    sys.stdout.write("\n")
