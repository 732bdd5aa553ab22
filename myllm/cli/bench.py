"""Look at runs and time the backends: `myllm plot`, `myllm bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from myllm.cli.app import DEVICE_HELP, DEVICES, app, err_console
from myllm.config.files import bench_values, is_config_file_name
from myllm.errors import UserError
from myllm.paths import STDOUT, check_json_output, check_output_file, write_json_output

# --- bench ---

Override = Annotated[int | None, typer.Option(help="override the config's")]
ConfigChoice = Annotated[
    str,
    typer.Option(
        metavar="<tiny|baby|default|FILE>",
        help="tiny, baby or default: model and batch; or a .toml/.json config file "
        "(its model and batch shape on the default preset's step counts)",
    ),
]

Steps = Annotated[
    int | None, typer.Option(help="training steps per timed repeat (default: per config)")
]
Warmup = Annotated[
    int | None, typer.Option(help="untimed training steps first (default: per config)")
]
Repeats = Annotated[
    int | None, typer.Option(help="timed repeats, medians reported (default: per config)")
]


@app.command()
def bench(
    backends: Annotated[
        str | None, typer.Option(help="comma-separated, e.g. torch,mlx (default: all installed)")
    ] = None,
    config: ConfigChoice = "default",
    d_model: Override = None,
    n_layers: Override = None,
    n_heads: Override = None,
    block_size: Override = None,
    batch_size: Override = None,
    steps: Steps = None,
    warmup: Warmup = None,
    repeats: Repeats = None,
    gen_tokens: Annotated[int, typer.Option("--gen-tokens", help="tokens per generation")] = 128,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write the report here (- : stdout)")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="draw the rates as a bar chart PNG")] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP, **DEVICES)] = "auto",
    dtype: Annotated[
        str, typer.Option(help="compute dtype(s), e.g. float32,bfloat16: a table each, interleaved")
    ] = "auto",
    compile: Annotated[
        str, typer.Option(help="compile the step: auto, on, off, or e.g. on,off: one table each")
    ] = "auto",
    dropout: Annotated[
        str | None, typer.Option(help="training dropout(s), e.g. 0.1,0 (default: the model's)")
    ] = None,
) -> None:
    """Time every backend side by side: training, forward, generation, memory, FLOP/s and MFU.

    Each backend (and each --dtype/--compile/--dropout cell) runs in its own process."""
    from myllm.bench import BenchSettings, run_matrix

    names = None if backends is None else [n.strip() for n in backends.split(",") if n.strip()]
    shape = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
             "block_size": block_size, "batch_size": batch_size}  # fmt: skip
    shape = {name: value for name, value in shape.items() if value is not None}
    if is_config_file_name(config):
        shape = {**bench_values(Path(config)), **shape}  # flags override the file
        config = "default"
    common = {"backends": names, "config": config, **shape, "steps": steps, "warmup": warmup,
              "repeats": repeats, "gen_tokens": gen_tokens, "device": device}  # fmt: skip
    cells = [BenchSettings(**common, **cell) for cell in matrix_cells(dtype, compile, dropout)]
    check_json_output(json_path)
    if plot is not None:
        check_output_file(plot, "--plot", "pass --plot FILE.png")
    with err_console.status("benchmarking") as status:
        reports = run_matrix(cells, progress=lambda message: status.update(message))
    print_reports(reports, cells, Console(stderr=str(json_path) == STDOUT))
    if json_path is not None:
        # One cell: the report as before; a matrix: {"matrix": [report, ...]} in order.
        write_json_output(json_path, reports[0] if len(reports) == 1 else {"matrix": reports})
        if str(json_path) != STDOUT:
            err_console.print(f"Wrote {json_path}")
    if plot is not None:
        from myllm.plot import plot_bench

        err_console.print(f"Wrote {plot_bench(plotted(reports, cells), plot).out}")


def matrix_cells(dtype: str, compile: str, dropout: str | None) -> list[dict[str, Any]]:
    """Every combination of the comma-separated --dtype, --compile and --dropout values."""
    from myllm.backend.precision import check_compile, check_dtype, parse_list

    dropouts: list[float | None] = [None]
    if dropout is not None:
        dropouts = [parse_dropout(value) for value in dropout.split(",") if value.strip()]
    cells = [
        {"dtype": one_dtype, "compile": one_compile, "dropout": one_dropout}
        for one_dtype in parse_list(dtype, check_dtype)
        for one_compile in parse_list(compile, check_compile)
        for one_dropout in dropouts
    ]
    if not cells:
        raise UserError("--dtype, --compile and --dropout need a value each: e.g. --dtype float32")
    return cells


def parse_dropout(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(
            f"--dropout {text.strip()!r} is not a number: use e.g. --dropout 0.1,0"
        ) from None


def print_reports(reports: list[dict], cells: list, console: Console) -> None:
    from myllm.bench import render_table, report_notes
    from myllm.bench.runner import describe_cell

    for settings, report in zip(cells, reports, strict=True):
        if len(reports) > 1:
            console.print(describe_cell(settings))
        console.print(render_table(report))
        for note in report_notes(report):
            console.print(note, markup=False, highlight=False, soft_wrap=True)


def plotted(reports: list[dict], cells: list) -> dict:
    """One report whose backends are every cell's: the whole matrix in one chart."""
    from myllm.bench.runner import describe_cell

    if len(reports) == 1:
        return reports[0]
    backends = {
        f"{name} ({describe_cell(settings)})": info
        for settings, report in zip(cells, reports, strict=True)
        for name, info in report["backends"].items()
    }
    return {**reports[0], "backends": backends}
