"""Train the GPT: `myllm train`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from myllm.cli.app import BACKENDS, DEVICE_HELP, DEVICES, _default, _model_default, app

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
    from myllm.backend.registry import check_backend_name
    from myllm.config.files import load_config_file, render, resolved_settings
    from myllm.config.settings import ModelSettings, TrainConfig
    from myllm.train.resume import read_resume
    from myllm.train.setup import run_training

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
        from myllm.config.presets import get_preset

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
