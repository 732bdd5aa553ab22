"""A checkpoint's loss on a text: `myllm eval`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from myllm.cli.app import DEVICE_HELP, DEVICES, _choices, app, err_console
from myllm.cli.generate import CheckpointBackend
from myllm.config.commands import EvalOptions


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Option(help="a .pt or .safetensors checkpoint")],
    data: Annotated[
        str | None, typer.Option(help="the text (default: the run's own --data)")
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
        typer.Option(
            "--eval-iters",
            help="N seeded batches; more than the split holds is one full pass "
            "(default: the run's own plan, as training evaluated)",
        ),
    ] = None,
    backend: CheckpointBackend = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP, **DEVICES)] = "auto",
    json_path: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="write the result as JSON to PATH (- stdout)"),
    ] = None,
) -> None:
    """Loss of a checkpoint on a text: nats, bits per character (nats / ln 2) and perplexity."""
    from myllm.paths import check_json_output, write_json_output
    from myllm.train.evaluation import evaluate_checkpoint

    EvalOptions(eval_iters)
    check_json_output(json_path)
    result = evaluate_checkpoint(checkpoint, data, split, eval_iters, backend, device, err_console)
    if result.note:
        err_console.print(result.note, highlight=False, soft_wrap=True)
    if json_path is not None:
        write_json_output(json_path, result.to_dict())
        if json_path != "-":
            err_console.print(f"Wrote {json_path}", highlight=False)
        return
    sys.stdout.write(
        f"{result.split} loss {result.loss_nats:.4f} nats, {result.bits_per_character:.4f} bits "
        f"per {result.unit}, perplexity {result.perplexity:.3f} ({result.windows:,} windows of "
        f"{result.block_size} on {result.data}, {result.backend})\n"
    )
