"""Time the backends: `myllm bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from myllm.cli.app import DEVICE_HELP, DEVICES, app, err_console
from myllm.errors import UserError

MIXED_COMPILE_NOTE = (
    "note: compiled and eager cells shared one process, which slowed torch's eager cells on the "
    "project's CPU (float32 training 1,599 vs 1,894 tokens/s alone; likely the compiled kernels' "
    "own OpenMP threads): compare eager cells from a run with --compile off"
)

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
        str, typer.Option(help="compute dtype(s), e.g. float32,bfloat16: a table each, interleaved")
    ] = "auto",
    compile: Annotated[
        str, typer.Option(help="compile the step: auto, on, off, or e.g. on,off: one table each")
    ] = "auto",
) -> None:
    """Time every backend side by side: training, forward, generation, memory, FLOP/s and MFU."""
    from myllm.backend.precision import check_compile, check_dtype, parse_list
    from myllm.bench import BenchSettings, render_table, report_notes, run_matrix, write_report
    from myllm.config.files import bench_values, is_config_file_name

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
    common = {"backends": names, "config": config, **shape, "steps": steps, "warmup": warmup,
              "repeats": repeats, "gen_tokens": gen_tokens, "device": device}  # fmt: skip
    cells = [BenchSettings(**common, dtype=d, compile=c) for d, c in matrix]
    with err_console.status("benchmarking") as status:
        reports = run_matrix(cells, progress=lambda message: status.update(message))
    console = Console()
    for (one_dtype, one_compile), report in zip(matrix, reports, strict=True):
        if len(matrix) > 1:
            console.print(f"--dtype {one_dtype} --compile {one_compile}")
        console.print(render_table(report))
        for note in report_notes(report):
            console.print(note, markup=False, highlight=False, soft_wrap=True)
    if len({one_compile for _, one_compile in matrix}) > 1:
        console.print(MIXED_COMPILE_NOTE, markup=False, highlight=False, soft_wrap=True)
    if json_path is not None:
        # One combination: the report as before; a matrix: {"matrix": [report, ...]} in order.
        write_report(json_path, report if len(reports) == 1 else {"matrix": reports})
        err_console.print(f"Wrote {json_path}")
    if plot is not None:
        from myllm.plot import plot_bench

        err_console.print(f"Wrote {plot_bench(report, plot).out}")
