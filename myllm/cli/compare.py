"""`myllm compare`: train one configuration on torch and on MLX from one seed, side by side.

Its settings are train's, flag for flag (derived from the declarations as myllm/cli/train.py's
are), resolved once and handed to both runs as one config file. Without --config or --preset the
run is short and small (COMPARE_DEFAULTS), and float32 unless --dtype says otherwise.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from myllm.cli.app import app
from myllm.cli.train import COMMAND_OPTIONS, flag_settings, setting_option
from myllm.errors import UserError
from myllm.paths import check_json_output, write_json_output

COMPARE_DEFAULTS = {
    "d_model": 64, "n_heads": 4, "n_layers": 2, "block_size": 32, "batch_size": 8,
    "dropout": 0.1, "max_steps": 200, "log_interval": 10, "eval_interval": 100, "eval_iters": 10,
}  # fmt: skip
OWN_OPTIONS = {
    "config": COMMAND_OPTIONS["config"],
    "preset": COMMAND_OPTIONS["preset"],
    "out": (
        Annotated[Path, typer.Option(help="folder of both runs (out/torch, out/mlx, logs)")],
        Path("compare"),
    ),
    "json_path": (
        Annotated[Path | None, typer.Option("--json", help="write the comparison (- = stdout)")],
        None,
    ),
    "plot": (
        Annotated[Path | None, typer.Option(help="PNG of both curves (default: OUT/compare.png)")],
        None,
    ),
    "overwrite": COMMAND_OPTIONS["overwrite"],
}


def compare_parameters() -> list[inspect.Parameter]:
    """Every train setting's option, then compare's own."""
    options = {}
    for settings in flag_settings().values():
        for name, (annotation, spec, default) in settings.items():
            options[name] = (setting_option(name, annotation, spec, default), None)
    options |= OWN_OPTIONS
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=default)
        for name, (hint, default) in options.items()
    ]


def compare(**options: Any) -> None:
    """Train on torch and MLX from the same seed; print the losses side by side, write a PNG."""
    from myllm.cli.train import resolve_request
    from myllm.config.files import render, resolved_settings
    from myllm.train.compare import compare_metrics, plot_comparison, run_both

    if options["config"] is None and options["preset"] is None:
        options |= {k: v for k, v in COMPARE_DEFAULTS.items() if options[k] is None}
    if options["dtype"] is None:
        options["dtype"] = "float32"  # auto would be bfloat16 on a GPU: no longer one curve
    request = resolve_request(
        {**options, "backend": "torch", "resume": None, "print_config": False}
    )
    settings = resolved_settings("torch", request.train_config, request.model_given)
    out = options["out"]
    plot = options["plot"] or out / "compare.png"
    if plot.suffix.lower() != ".png":
        raise UserError(f"--plot {plot} is not a .png path: choose a path ending in .png")
    check_json_output(options["json_path"])
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "compare.json"
    config_file.write_text(render(settings, "json"))
    metrics = run_both(config_file, out, options["overwrite"])
    comparison = compare_metrics(metrics["torch"], metrics["mlx"])
    print_table(comparison)
    plot_comparison(comparison, plot, f"torch vs MLX, seed {request.train_config.seed}")
    report = comparison.to_dict(settings)
    if options["json_path"] is not None:
        write_json_output(options["json_path"], report)
    Console(stderr=True).print(f"Runs in {out}/, plot {plot}")


def print_table(comparison) -> None:
    """Train losses per logged step, torch beside MLX, then validation, then the maxima."""
    console = Console(stderr=True)
    for kind in ("train", "val"):
        table = Table(title=f"{kind} loss")
        for column in ("step", "torch", "mlx", "|difference|"):
            table.add_column(column, justify="right")
        for pair in getattr(comparison, kind):
            row = (f"{pair.torch:.6f}", f"{pair.mlx:.6f}", f"{pair.difference:.2e}")
            table.add_row(str(pair.step), *row)
        console.print(table)
        worst = comparison.max_difference(kind)
        if worst is not None:
            console.print(f"max |{kind} loss difference|: {worst:.3g}")


compare.__signature__ = inspect.Signature(compare_parameters())  # type: ignore[attr-defined]
app.command()(compare)
