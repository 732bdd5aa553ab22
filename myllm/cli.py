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

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="One small GPT, trained and sampled natively in PyTorch and in Apple MLX.",
)
data_app = typer.Typer(no_args_is_help=True, help="List and fetch the training corpora.")
app.add_typer(data_app, name="data")
err_console = Console(stderr=True)


def main() -> None:
    """Entry point: a UserError becomes one line on stderr and its exit code, never a traceback."""
    try:
        app()
    except UserError as error:
        err_console.print(
            f"[bold red]error:[/] {error}", markup=True, highlight=False, soft_wrap=True
        )
        sys.exit(error.exit_code)


def _default(field_name: str) -> str:
    from myllm.config import TrainConfig

    return f"(default: {getattr(TrainConfig, field_name)})"


def _model_default(field_name: str) -> str:
    from myllm.config import ModelConfig

    return f"(default: {ModelConfig.__dataclass_fields__[field_name].default})"


# --- train ---


@app.command()
def train(
    backend: Annotated[str, typer.Option(help="torch or mlx")] = "torch",
    data: Annotated[str | None, typer.Option(help=f"UTF-8 text file {_default('data')}")] = None,
    checkpoint_dir: Annotated[
        str | None,
        typer.Option("--checkpoint-dir", "--checkpoint_dir", help=_default("checkpoint_dir")),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help=_default("epochs"))] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", "--max_steps", help="stop after N steps")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "--batch_size", help=_default("batch_size"))
    ] = None,
    block_size: Annotated[
        int | None, typer.Option("--block-size", "--block_size", help=_default("block_size"))
    ] = None,
    d_model: Annotated[
        int | None, typer.Option("--d-model", "--d_model", help=_model_default("d_model"))
    ] = None,
    n_heads: Annotated[
        int | None, typer.Option("--n-heads", "--n_heads", help=_model_default("n_heads"))
    ] = None,
    n_layers: Annotated[
        int | None, typer.Option("--n-layers", "--n_layers", help=_model_default("n_heads"))
    ] = None,
    dropout: Annotated[float | None, typer.Option(help=_model_default("dropout"))] = None,
    lr: Annotated[float | None, typer.Option(help=_default("lr"))] = None,
    val_split: Annotated[
        float | None, typer.Option("--val-split", "--val_split", help=_default("val_split"))
    ] = None,
    seed: Annotated[int | None, typer.Option(help=_default("seed"))] = None,
    eval_interval: Annotated[
        int | None,
        typer.Option("--eval-interval", "--eval_interval", help="validate every N steps"),
    ] = None,
    eval_iters: Annotated[
        int | None,
        typer.Option("--eval-iters", "--eval_iters", help="validation batches (default: all)"),
    ] = None,
    log_interval: Annotated[
        int | None, typer.Option("--log-interval", "--log_interval", help=_default("log_interval"))
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, mps, gpu")] = None,
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", "--warmup_steps", help=_default("warmup_steps"))
    ] = None,
    beta2: Annotated[float | None, typer.Option(help=_default("beta2"))] = None,
    weight_decay: Annotated[
        float | None,
        typer.Option("--weight-decay", "--weight_decay", help=_default("weight_decay")),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="continue exactly from a checkpoint (.pt or .safetensors)")
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
    from myllm.checkpoint import read_checkpoint
    from myllm.config import TrainConfig
    from myllm.training import run_training

    given = {
        "data": data, "checkpoint_dir": checkpoint_dir, "epochs": epochs, "max_steps": max_steps,
        "batch_size": batch_size, "block_size": block_size, "lr": lr, "val_split": val_split,
        "seed": seed, "eval_interval": eval_interval, "eval_iters": eval_iters,
        "log_interval": log_interval, "device": device, "warmup_steps": warmup_steps,
        "beta2": beta2, "weight_decay": weight_decay,
        "dtype": dtype, "compile": compile, "grad_accum_steps": grad_accum_steps,
    }  # fmt: skip
    given = {name: value for name, value in given.items() if value is not None}
    model_settings = {"d_model": d_model, "n_heads": n_heads, "n_layers": n_layers,
                      "dropout": dropout}  # fmt: skip
    model_settings = {name: value for name, value in model_settings.items() if value is not None}
    stored: dict[str, Any] = {}
    if resume is not None:
        stored = read_checkpoint(resume).train_config or {}
        given.setdefault("checkpoint_dir", str(resume.parent))
    train_config = TrainConfig.from_dict({**stored, **given})
    result = run_training(backend, train_config, model_settings, resume)
    raise typer.Exit(result.exit_code)


# --- generate ---


@app.command()
def generate(
    checkpoint: Annotated[Path, typer.Option(help="a .pt or .safetensors checkpoint")],
    tokenizer: Annotated[
        Path | None, typer.Option(help="(default: tokenizer.json beside the checkpoint)")
    ] = None,
    prompt: Annotated[str, typer.Option(help="text to continue")] = "",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "--max_new_tokens")] = 500,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", "--top_k", help="0 = off")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", "--top_p", help="1 = off")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="seed for reproducible sampling")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "--num_samples", min=1)] = 1,
    kv_cache: Annotated[bool, typer.Option("--kv-cache/--no-kv-cache")] = True,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="drop prompt characters not in the vocabulary")
    ] = False,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="a REPL")] = False,
    backend: Annotated[
        str | None,
        typer.Option(help="(default: the checkpoint's own: .pt torch, .safetensors mlx)"),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps, gpu")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="compute dtype: auto, float32, bfloat16, float16")
    ] = "auto",
) -> None:
    """Continue a prompt, or chat with the model in an interactive REPL."""
    from myllm.backends import backend_for_checkpoint, load_backend
    from myllm.checkpoint import read_checkpoint
    from myllm.precision import check_dtype
    from myllm.repl import GenerationRequest, generate_text, run_repl
    from myllm.sampling import SamplingSettings
    from myllm.tokenizer import CharTokenizer
    from myllm.training import check_tokenizer_matches

    settings = SamplingSettings(temperature, top_k, top_p, max_new_tokens)
    loaded = read_checkpoint(checkpoint)
    char_tokenizer = CharTokenizer.load(tokenizer or checkpoint.parent / "tokenizer.json")
    check_tokenizer_matches(char_tokenizer, loaded.model_config, checkpoint)
    chosen = load_backend(backend or backend_for_checkpoint(checkpoint))
    check_dtype(dtype)
    decoder = chosen.generate.Decoder(chosen.generate.load_model(loaded, device), dtype)
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


# --- convert ---


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="checkpoint to read (.pt or .safetensors)")],
    destination: Annotated[Path, typer.Argument(help="checkpoint to write (.pt or .safetensors)")],
) -> None:
    """Convert a checkpoint between torch (.pt) and MLX (.safetensors), training state included."""
    from myllm.checkpoint import checkpoint_format, read_checkpoint, write_checkpoint

    checkpoint_format(destination)
    if destination.resolve() == source.resolve():
        raise UserError(f"source and destination are the same file {source}: pick another DST")
    write_checkpoint(destination, read_checkpoint(source))
    tokenizer_source = source.parent / "tokenizer.json"
    tokenizer_destination = destination.parent / "tokenizer.json"
    copied = ""
    if tokenizer_source.is_file() and not tokenizer_destination.exists():
        shutil.copyfile(tokenizer_source, tokenizer_destination)
        copied = f" and {tokenizer_destination}"
    err_console.print(f"Wrote {destination}{copied}.")


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


# --- plot ---


@app.command()
def plot(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN_DIR...", help="directories written by myllm train")
    ],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("loss.png"),
    metric: Annotated[str, typer.Option(help="loss, lr or tokens_per_second")] = "loss",
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
    config: Annotated[str, typer.Option(help="tiny, baby or default: model and batch")] = "default",
    d_model: Annotated[
        int | None, typer.Option("--d-model", "--d_model", help="override the config's")
    ] = None,
    n_layers: Annotated[
        int | None, typer.Option("--n-layers", "--n_layers", help="override the config's")
    ] = None,
    n_heads: Annotated[
        int | None, typer.Option("--n-heads", "--n_heads", help="override the config's")
    ] = None,
    block_size: Annotated[
        int | None, typer.Option("--block-size", "--block_size", help="override the config's")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "--batch_size", help="override the config's")
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
    gen_tokens: Annotated[
        int, typer.Option("--gen-tokens", "--gen_tokens", help="tokens per generation")
    ] = 128,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="draw the rates as a bar chart PNG")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps, gpu")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="compute dtype(s), e.g. float32,bfloat16: one run each")
    ] = "auto",
    compile: Annotated[
        str, typer.Option(help="compile the step: auto, on, off, or e.g. on,off: one run each")
    ] = "auto",
) -> None:
    """Time every backend side by side: training, forward, generation, memory, FLOP/s and MFU."""
    from myllm.bench import BenchSettings, render_table, report_notes, run_bench, write_report
    from myllm.precision import check_compile, check_dtype, parse_list

    names = None if backends is None else [n.strip() for n in backends.split(",") if n.strip()]
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
            backends=names, config=config, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
            block_size=block_size, batch_size=batch_size, steps=steps, warmup=warmup,
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
