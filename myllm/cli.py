"""The `myllm` command line: train, generate, convert, data (typer + rich)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from myllm.errors import UserError

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="One small GPT, trained and sampled natively in PyTorch and in Apple MLX.",
)
data_app = typer.Typer(
    context_settings=HELP_OPTIONS,
    no_args_is_help=True,
    help="List, fetch and prepare (tokenize once) the training corpora.",
)
app.add_typer(data_app, name="data")
err_console = Console(stderr=True)
DEVICE_HELP = "torch: auto, cpu, cuda[:N], mps; mlx: auto, cpu, gpu"
# The reference's underscore spellings: accepted (translated in main()), hidden from --help.
UNDERSCORE_SPELLINGS = (
    "--batch_size", "--block_size", "--checkpoint_dir", "--d_model", "--eval_interval",
    "--eval_iters", "--gen_tokens", "--log_interval", "--max_new_tokens", "--max_steps",
    "--n_heads", "--n_layers", "--num_samples", "--top_k", "--top_p", "--val_split",
    "--warmup_steps", "--weight_decay",
)  # fmt: skip


def main() -> None:
    """Entry point: a UserError becomes one line on stderr and its exit code, never a traceback."""
    try:
        app(args=hyphenate_options(sys.argv[1:]), prog_name="myllm")
    except UserError as error:
        err_console.print(
            f"[bold red]error:[/] {error}", markup=True, highlight=False, soft_wrap=True
        )
        sys.exit(error.exit_code)


def _choices(*names: str) -> dict[str, Any]:
    """Show an enumerated option's choices in --help and complete them in the shell.

    The value stays a string that the command checks itself, so a bad one is the usual one-line
    error naming the choices (exit 2); --device also takes an index (cuda:1)."""

    def complete(incomplete: str) -> list[str]:
        return [name for name in names if name.startswith(incomplete)]

    return {"metavar": "<" + "|".join(names) + ">", "autocompletion": complete}


BACKENDS = _choices("torch", "mlx")
DEVICES = _choices("auto", "cpu", "cuda", "mps", "gpu")


def hyphenate_options(args: list[str]) -> list[str]:
    """--batch_size 8 and --batch_size=8 become --batch-size (the reference's spellings)."""
    translated = []
    for arg in args:
        name, equals, value = arg.partition("=")
        if name in UNDERSCORE_SPELLINGS:
            arg = name.replace("_", "-") + equals + value
        translated.append(arg)
    return translated


def versions() -> dict[str, str]:
    """myllm, Python and the frameworks' versions, read from package metadata (nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from myllm import __version__

    found = {"myllm": __version__, "python": sys.version.split()[0]}
    for package in ("torch", "mlx"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(" ".join(f"{name} {v}" for name, v in versions().items()) + "\n")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="print the myllm, Python, torch and MLX versions and exit",
        ),
    ] = False,
) -> None:
    """One small GPT, trained and sampled natively in PyTorch and in Apple MLX."""


def _default(field_name: str) -> str:
    from myllm.config import TrainConfig

    return f"(default: {getattr(TrainConfig, field_name)})"


def _model_default(field_name: str) -> str:
    from myllm.config import ModelConfig

    return f"(default: {ModelConfig.__dataclass_fields__[field_name].default})"


# --- train ---


@app.command()
def train(
    backend: Annotated[str | None, typer.Option(help="(default: torch)", **BACKENDS)] = None,
    data: Annotated[str | None, typer.Option(help=f"UTF-8 text file {_default('data')}")] = None,
    checkpoint_dir: Annotated[
        str | None,
        typer.Option("--checkpoint-dir", help=_default("checkpoint_dir")),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help=f"passes over the text {_default('epochs')}")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="stop after N steps")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help=_default("batch_size"))
    ] = None,
    block_size: Annotated[
        int | None, typer.Option("--block-size", help=_default("block_size"))
    ] = None,
    d_model: Annotated[
        int | None, typer.Option("--d-model", help=_model_default("d_model"))
    ] = None,
    n_heads: Annotated[
        int | None, typer.Option("--n-heads", help=_model_default("n_heads"))
    ] = None,
    n_layers: Annotated[
        int | None, typer.Option("--n-layers", help=_model_default("n_layers"))
    ] = None,
    dropout: Annotated[float | None, typer.Option(help=_model_default("dropout"))] = None,
    lr: Annotated[float | None, typer.Option(help=_default("lr"))] = None,
    val_split: Annotated[
        float | None, typer.Option("--val-split", help=_default("val_split"))
    ] = None,
    seed: Annotated[int | None, typer.Option(help=_default("seed"))] = None,
    eval_interval: Annotated[
        int | None,
        typer.Option("--eval-interval", help="validate every N steps"),
    ] = None,
    eval_iters: Annotated[
        int | None,
        typer.Option("--eval-iters", help="validation batches (default: all)"),
    ] = None,
    log_interval: Annotated[
        int | None, typer.Option("--log-interval", help=_default("log_interval"))
    ] = None,
    device: Annotated[
        str | None, typer.Option(help=f"{DEVICE_HELP} (default: auto)", **DEVICES)
    ] = None,
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", help=_default("warmup_steps"))
    ] = None,
    beta2: Annotated[float | None, typer.Option(help=_default("beta2"))] = None,
    weight_decay: Annotated[
        float | None,
        typer.Option("--weight-decay", help=_default("weight_decay")),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="continue exactly from a checkpoint (.pt or .safetensors)")
    ] = None,
    tf32: Annotated[
        bool | None,
        typer.Option(
            "--tf32/--no-tf32",
            envvar="MYLLM_TF32",
            help="float32 matmuls in TF32 on GPUs that have it (default: off, float32)",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="replace the run already in --checkpoint-dir (else it is refused)"),
    ] = False,
    save_interval: Annotated[
        int | None,
        typer.Option("--save-interval", help="save checkpoint_last every N steps"),
    ] = None,
    save_minutes: Annotated[
        float | None,
        typer.Option(
            "--save-minutes",
            help=f"save checkpoint_last every M minutes, 0 = off {_default('save_minutes')}",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="a .toml or .json file of settings; flags given override it"),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option("--print-config", help="print the resolved settings as a config file, exit"),
    ] = False,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="char, or byte: any file, losses in bits per byte (default: char)"),
    ] = None,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            "--cache-dir",
            help="token cache folder [env: MYLLM_CACHE] (default: .myllm_cache/ beside the data)",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="model shape, block and batch size: reference, medium, large, gpt2-small "
            "(flags override it; sizes in README)"
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="compute dtype: auto (bfloat16 on CUDA / Apple GPUs, float32 on CPUs), "
            "float32, bfloat16, float16; weights stay float32 (default: auto, or the resumed run's)"
        ),
    ] = None,
    compile: Annotated[
        str | None, typer.Option(help="compile the step: auto (torch: on for CUDA), on, off")
    ] = None,
    grad_accum_steps: Annotated[
        int | None,
        typer.Option(
            "--grad-accum-steps",
            "--grad_accum_steps",
            help="split each batch into N micro-batches, one optimizer step (default: 1)",
        ),
    ] = None,
) -> None:
    """Train the GPT on a text file, with checkpoints, validation, metrics.jsonl and samples."""
    from myllm.backends import check_backend_name
    from myllm.config import ModelSettings, TrainConfig
    from myllm.config_file import load_config_file, render, resolved_settings
    from myllm.resume import read_resume
    from myllm.training import run_training

    given = {
        "data": data, "checkpoint_dir": checkpoint_dir, "epochs": epochs, "max_steps": max_steps,
        "batch_size": batch_size, "block_size": block_size, "lr": lr, "val_split": val_split,
        "seed": seed, "eval_interval": eval_interval, "eval_iters": eval_iters,
        "log_interval": log_interval, "device": device, "warmup_steps": warmup_steps,
        "beta2": beta2, "weight_decay": weight_decay, "tf32": tf32,
        "save_interval": save_interval, "save_minutes": save_minutes, "tokenizer": tokenizer,
        "cache_dir": cache_dir, "dtype": dtype, "compile": compile,
        "grad_accum_steps": grad_accum_steps,
    }  # fmt: skip
    given = {name: value for name, value in given.items() if value is not None}
    model_given = {"d_model": d_model, "n_heads": n_heads, "n_layers": n_layers,
                   "dropout": dropout}  # fmt: skip
    model_given = {name: value for name, value in model_given.items() if value is not None}
    file_format = "toml"
    if config is not None:
        from_file = load_config_file(config)
        given = {**from_file.train, **given}
        model_given = {**from_file.model, **model_given}
        backend = backend or from_file.run.get("backend")
        file_format = from_file.format
    if preset is not None:
        from myllm.presets import get_preset

        chosen = get_preset(preset)
        model_given = {**chosen.model_settings(), **model_given}
        given = {"block_size": chosen.block_size, "batch_size": chosen.batch_size, **given}
    model_settings = ModelSettings(**model_given)
    if resume is None:
        train_config, resume_point = TrainConfig(**given), None
    else:
        resume_point, train_config = read_resume(resume, given)
    backend = check_backend_name(backend or "torch")
    if print_config:
        sys.stdout.write(
            render(resolved_settings(backend, train_config, model_settings.given()), file_format)
        )
        return
    result = run_training(backend, train_config, model_settings, resume_point, overwrite=overwrite)
    raise typer.Exit(result.exit_code)


# --- generate ---


@app.command()
def generate(
    checkpoint: Annotated[Path, typer.Option(help="a .pt or .safetensors checkpoint")],
    tokenizer: Annotated[
        Path | None, typer.Option(help="(default: tokenizer.json beside the checkpoint)")
    ] = None,
    prompt: Annotated[str, typer.Option(help="text to continue")] = "",
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="characters to generate")
    ] = 500,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", help="0 = off")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", help="1 = off")] = 1.0,
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
    backend: Annotated[
        str | None,
        typer.Option(
            help="(default: the checkpoint's own: .pt torch, .safetensors mlx)", **BACKENDS
        ),
    ] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP, **DEVICES)] = "auto",
    dtype: Annotated[
        str, typer.Option(help="compute dtype: auto, float32, bfloat16, float16")
    ] = "auto",
) -> None:
    """Continue a prompt, or chat with the model in an interactive REPL."""
    from myllm.backends import load_backend, native_backend
    from myllm.checkpoint import read_checkpoint
    from myllm.config import check_seed
    from myllm.precision import check_dtype
    from myllm.repl import GenerationRequest, generate_text, run_repl
    from myllm.resume import check_tokenizer_matches
    from myllm.sampling import SamplingSettings
    from myllm.tokenizers import load_tokenizer

    settings = SamplingSettings(temperature, top_k, top_p, max_new_tokens)
    check_seed(seed)
    loaded = read_checkpoint(checkpoint)
    char_tokenizer = load_tokenizer(tokenizer or checkpoint.parent / "tokenizer.json")
    check_tokenizer_matches(char_tokenizer, loaded.model_config, checkpoint)
    check_dtype(dtype)
    chosen = load_backend(backend or native_backend(checkpoint))
    decoder = chosen.load_decoder(loaded, device, dtype)
    request = GenerationRequest(
        char_tokenizer, settings, np.random.default_rng(seed), num_samples, kv_cache, skip_unknown
    )
    if interactive:
        run_repl(decoder, request)
        return
    char_tokenizer.encode(prompt, skip_unknown=skip_unknown)  # unknown characters: fail first
    if num_samples == 1:
        sys.stdout.write(prompt)
    try:
        generate_text(decoder, request, prompt, sys.stdout)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        raise typer.Exit(130) from None
    sys.stdout.write("\n")


# --- eval ---


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Option(help="a .pt or .safetensors checkpoint")],
    data: Annotated[
        str | None, typer.Option(help="UTF-8 text file (default: the run's own --data)")
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="the run's validation or training part, or the whole text",
            **_choices("val", "train", "all"),
        ),
    ] = "val",
    eval_iters: Annotated[
        int | None,
        typer.Option("--eval-iters", min=1, help="N seeded batches (default: every window)"),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="(default: the checkpoint's own: .pt torch, .safetensors mlx)", **BACKENDS
        ),
    ] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP, **DEVICES)] = "auto",
    json_output: Annotated[
        bool, typer.Option("--json", help="print the result as one JSON object")
    ] = False,
) -> None:
    """Loss of a checkpoint on a text: nats, bits per character (nats / ln 2) and perplexity."""
    import json

    from myllm.evaluation import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, data, split, eval_iters, backend, device)
    if json_output:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        return
    sys.stdout.write(
        f"{result.split} loss {result.loss_nats:.4f} nats, {result.bits_per_character:.4f} bits "
        f"per character, perplexity {result.perplexity:.3f} ({result.windows:,} windows of "
        f"{result.block_size} on {result.data}, {result.backend})\n"
    )


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
    from myllm.checkpoint import checkpoint_format, read_checkpoint, write_checkpoint

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
    tokenizer_source = source.parent / "tokenizer.json"
    tokenizer_destination = destination.parent / "tokenizer.json"
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
    from myllm.tokenizers import load_tokenizer

    if source.resolve() == destination.resolve():
        return
    if load_tokenizer(source).to_json() != load_tokenizer(destination).to_json():
        raise UserError(
            f"{destination} holds another vocabulary than {source}: the converted checkpoint "
            "would decode through the wrong tokenizer; convert into another folder"
        )


def _is_nanogpt(source: Path) -> bool:
    from myllm.backends import backend_module, is_installed

    return is_installed("torch") and backend_module("torch", "nanogpt").is_nanogpt_checkpoint(
        source
    )


def _convert_from_nanogpt(source: Path, destination: Path, meta: Path) -> None:
    from myllm.backends import backend_module
    from myllm.checkpoint import write_checkpoint
    from myllm.nanogpt_meta import read_meta
    from myllm.tokenizer import CharTokenizer

    tokenizer = read_meta(meta)
    checkpoint = backend_module("torch", "nanogpt").read_nanogpt(source)
    if tokenizer.vocab_size != checkpoint.model_config.vocab_size:
        raise UserError(
            f"{meta} has {tokenizer.vocab_size} characters but {source} has vocab_size "
            f"{checkpoint.model_config.vocab_size}: pass the meta.pkl of its dataset with --meta"
        )
    tokenizer_path = destination.parent / "tokenizer.json"
    if tokenizer_path.exists() and CharTokenizer.load(tokenizer_path).chars != tokenizer.chars:
        raise UserError(
            f"{tokenizer_path} exists with another vocabulary: write DST to another directory"
        )
    write_checkpoint(destination, checkpoint)
    tokenizer.save(tokenizer_path)
    err_console.print(f"Wrote {destination} and {tokenizer_path} (from nanoGPT).")


def _convert_to_nanogpt(source: Path, destination: Path, dataset: str) -> None:
    from myllm.backends import backend_module
    from myllm.checkpoint import read_checkpoint
    from myllm.nanogpt_meta import write_meta
    from myllm.resume import check_tokenizer_matches
    from myllm.tokenizer import CharTokenizer

    if destination.suffix != ".pt":
        raise UserError(f"nanoGPT reads a .pt file, not {destination}: name DST e.g. out/ckpt.pt")
    checkpoint = read_checkpoint(source)
    tokenizer = CharTokenizer.load(source.parent / "tokenizer.json")
    check_tokenizer_matches(tokenizer, checkpoint.model_config, source)
    backend_module("torch", "nanogpt").write_nanogpt(destination, checkpoint, dataset)
    meta_path = destination.parent / "meta.pkl"
    write_meta(meta_path, tokenizer)
    err_console.print(
        f"Wrote {destination} and {meta_path}; nanoGPT's sample.py reads "
        f"data/{dataset}/meta.pkl: copy {meta_path} there.",
        soft_wrap=True,
    )


# --- data ---


@data_app.command("list")
def data_list() -> None:
    """The corpora `myllm data fetch` knows."""
    from rich.table import Table

    from myllm.corpora import list_corpora

    table = Table(title="Corpora (myllm data fetch NAME)")
    for column in ("name", "MB", "source", "sha256", "description"):
        table.add_column(column, justify="right" if column == "MB" else "left")
    for info in list_corpora():
        source = " + ".join(info.parts) if info.parts else info.url
        table.add_row(
            info.name, f"{info.bytes / 1e6:.2f}", source, info.sha256[:12], info.description
        )
    Console().print(table)


@data_app.command("fetch")
def data_fetch(
    names: Annotated[
        list[str] | None, typer.Argument(help="corpora to fetch (default: tinyshakespeare)")
    ] = None,
    mirror: Annotated[
        Path | None,
        typer.Option(help="a local directory with the raw files [env: MYLLM_DATA_MIRROR]"),
    ] = None,
    dest: Annotated[Path, typer.Option(help="where to write NAME.txt")] = Path("data"),
) -> None:
    """Download (or copy from a mirror), check sha256 and strip Gutenberg boilerplate."""
    from myllm.corpora import DEFAULT_CORPUS, corpus_info, fetch

    names = names or [DEFAULT_CORPUS]
    for name in names:
        corpus_info(name)  # an unknown name fails before anything is fetched
    for name in names:
        path = fetch(name, dest_dir=dest, mirror=mirror)
        err_console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


@data_app.command("prepare")
def data_prepare(
    file: Annotated[Path, typer.Argument(help="the text (or any file, with --tokenizer byte)")],
    tokenizer: Annotated[str, typer.Option(help="char or byte")] = "char",
    val_split: Annotated[
        float, typer.Option("--val-split", "--val_split", help="as train's --val-split")
    ] = 0.1,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            "--cache-dir",
            help="token cache folder [env: MYLLM_CACHE] (default: .myllm_cache/ beside FILE)",
        ),
    ] = None,
) -> None:
    """Encode FILE into the token cache that `myllm train --data FILE` then memory-maps."""
    import time

    from myllm.config import TrainConfig
    from myllm.corpus_files import byte_progress
    from myllm.token_cache import load_cached_tokens

    TrainConfig(val_split=val_split, tokenizer=tokenizer)  # the same checks as train's
    if not file.is_file():
        raise UserError(f"{file} not found: pass an existing FILE (`myllm data fetch` gets some)")
    started = time.perf_counter()
    with byte_progress(err_console, transient=False) as progress:
        cached = load_cached_tokens(file, tokenizer, val_split, cache_dir, progress)
    seconds = time.perf_counter() - started
    size_mb = file.stat().st_size / 1e6
    state = "written" if cached.built else "already up to date"
    err_console.print(
        f"Token cache {cached.path} {state}: {len(cached.tokens):,} tokens "
        f"({cached.tokens.dtype}), vocabulary {cached.tokenizer.vocab_size}, split at "
        f"{cached.split:,}; {size_mb:,.1f} MB in {seconds:.1f} s "
        f"({size_mb / max(seconds, 1e-9):,.1f} MB/s).",
        highlight=False,
        soft_wrap=True,
    )


# --- plot ---


@app.command()
def plot(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN_DIR...", help="directories written by myllm train")
    ],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("loss.png"),
    metric: Annotated[
        str,
        typer.Option(
            help="what to plot against steps", **_choices("loss", "lr", "tokens_per_second")
        ),
    ] = "loss",
    log_x: Annotated[bool, typer.Option("--log-x", help="logarithmic x axis")] = False,
) -> None:
    """Plot the training curves of one or more runs into a PNG (one colour per run)."""
    from myllm.plot import plot_runs

    summary = plot_runs(run_dirs, out, metric=metric, log_x=log_x)
    err_console.print(f"Wrote {summary.out} ({', '.join(summary.labels)})", soft_wrap=True)


# --- bench ---


@app.command()
def bench(
    backends: Annotated[
        str | None,
        typer.Option(help="comma-separated, e.g. torch,mlx (default: all installed)"),
    ] = None,
    config: Annotated[
        str,
        typer.Option(
            metavar="<tiny|baby|default|FILE>",
            help="tiny, baby or default: model and batch; or a .toml/.json config file "
            "(its model and batch shape on the default preset's step counts)",
        ),
    ] = "default",
    d_model: Annotated[int | None, typer.Option("--d-model", help="override the config's")] = None,
    n_layers: Annotated[
        int | None, typer.Option("--n-layers", help="override the config's")
    ] = None,
    n_heads: Annotated[int | None, typer.Option("--n-heads", help="override the config's")] = None,
    block_size: Annotated[
        int | None, typer.Option("--block-size", help="override the config's")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="override the config's")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="training steps per timed repeat (default: per config)")
    ] = None,
    warmup: Annotated[
        int | None, typer.Option(help="untimed training steps first (default: per config)")
    ] = None,
    repeats: Annotated[
        int | None, typer.Option(help="timed repeats, medians reported (default: per config)")
    ] = None,
    gen_tokens: Annotated[int, typer.Option("--gen-tokens", help="tokens per generation")] = 128,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="draw the rates as a bar chart PNG")
    ] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP, **DEVICES)] = "auto",
    dtype: Annotated[
        str, typer.Option(help="compute dtype(s), e.g. float32,bfloat16: one run each")
    ] = "auto",
    compile: Annotated[
        str, typer.Option(help="compile the step: auto, on, off, or e.g. on,off: one run each")
    ] = "auto",
) -> None:
    """Time every backend side by side: training, forward, generation, memory, FLOP/s and MFU."""
    from myllm.bench import BenchSettings, render_table, report_notes, run_bench, write_report
    from myllm.config_file import bench_values, is_config_file_name
    from myllm.precision import check_compile, check_dtype, parse_list

    names = None if backends is None else [n.strip() for n in backends.split(",") if n.strip()]
    shape = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
             "block_size": block_size, "batch_size": batch_size}  # fmt: skip
    shape = {name: value for name, value in shape.items() if value is not None}
    if is_config_file_name(config):
        shape = {**bench_values(Path(config)), **shape}  # flags override the file
        config = "default"
    matrix = [
        (one_dtype, one_compile)
        for one_dtype in parse_list(dtype, check_dtype)
        for one_compile in parse_list(compile, check_compile)
    ]
    if not matrix:
        raise UserError("--dtype and --compile need a value each: e.g. --dtype float32,bfloat16")
    reports = []
    console = Console()
    for one_dtype, one_compile in matrix:
        settings = BenchSettings(
            backends=names, config=config, **shape, steps=steps, warmup=warmup,
            repeats=repeats, gen_tokens=gen_tokens, device=device, dtype=one_dtype,
            compile=one_compile,
        )  # fmt: skip
        with err_console.status("benchmarking") as status:
            report = run_bench(settings, progress=lambda message: status.update(message))
        reports.append(report)
        if len(matrix) > 1:
            console.print(f"--dtype {one_dtype} --compile {one_compile}")
        console.print(render_table(report))
        for note in report_notes(report):
            console.print(note, markup=False, highlight=False, soft_wrap=True)
    if json_path is not None:
        # One combination: the report as before; a matrix: {"matrix": [report, ...]} in order.
        write_report(json_path, report if len(reports) == 1 else {"matrix": reports})
        err_console.print(f"Wrote {json_path}")
    if plot is not None:
        from myllm.plot import plot_bench

        err_console.print(f"Wrote {plot_bench(report, plot).out}")
