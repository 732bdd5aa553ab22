"""Training curves of runs as a PNG: `myllm plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from myllm.cli.app import _choices, app, err_console


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
