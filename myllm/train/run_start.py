"""The start of a run: the checks that need the run's length, the records written into its
directory, what it says first, and its progress bar.

The loop (myllm/train/loop.py) calls these once, on rank 0 for what is written or printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from myllm.config.settings import TrainConfig
from myllm.errors import UserError
from myllm.run.directory import holds_run, remove_run_files
from myllm.run.files import MetricsLog, RunFiles
from myllm.train.evaluation_plan import EvaluationPlan


def check_warmup_fits(config: TrainConfig, total_steps: int) -> None:
    """A warm-up longer than the run (its --epochs known only with the data) is refused."""
    if config.warmup_steps > total_steps:
        raise UserError(
            f"warmup_steps {config.warmup_steps} is longer than the run, {total_steps} steps on "
            "this data: the learning rate would never reach --lr; lower --warmup-steps to at "
            f"most {total_steps}, or raise --epochs"
        )


def open_run_files(run: Any, resume: Path | None) -> MetricsLog:
    """Rank 0 writes tokenizer.json and run.json and says how the run trains; every rank gets
    its metrics log (myllm/run/files.py). `run` is the TrainingRun of myllm/train/loop.py."""
    if run.is_main:
        write_run_start(run, run_record(run, resume))
        announce(run.console, run.trainer, run.evaluation, run.config.grad_accum_steps)
        if resume:
            set_aside_later_records(run.files, run.state.step, run.console)
    return MetricsLog(run.files.metrics, append=resume is not None, enabled=run.is_main)


def run_record(run: Any, resume: Path | None) -> dict[str, Any]:
    """What run.json says about this start (a run resumed in place: at which step)."""
    trainer, config = run.trainer, run.config
    record = {
        "backend": run.backend_name,
        "device": trainer.describe_device(),
        "matmul_precision": trainer.matmul_precision,
        "versions": trainer.versions(),
        "model_config": trainer.model.config.to_dict(),
        "train_config": config.to_dict(),
        "world_size": trainer.world_size,
        "resumed_from": str(resume) if resume else None,
        "total_steps": run.total_steps,
        "tokenizer": config.tokenizer,
        "evaluation": run.evaluation.to_dict(),
        "precision": {
            **trainer.precision.record(),  # dtype, why, decoding's dtype
            "compiled": trainer.compiled,
            "grad_accum_steps": config.grad_accum_steps,
        },
    }
    return {**record, "step": run.state.step} if run.continues_in_place else record


def write_run_start(run: Any, record: dict[str, Any]) -> None:
    """tokenizer.json and run.json; --overwrite first removes the old run's files (only those)."""
    files = run.files
    files.create_directory()
    if run.overwrite and holds_run(files.directory):
        removed = remove_run_files(files.directory)
        run.console.print(
            f"--overwrite: removed the {len(removed)} files of the run in {files.directory} "
            "(other files there stay)"
        )
    run.corpus.tokenizer.save(files.tokenizer)
    if run.continues_in_place:  # a run resumed in place adds to its run.json
        files.add_resume_to_run_info(record)
    else:
        files.write_run_info(record)


def announce(console: Console, trainer: Any, evaluation: EvaluationPlan, accum_steps: int) -> None:
    """The run's first lines: a sampled evaluation plan, the precision, its warning."""
    if evaluation.reason != "--eval-iters":
        console.print(evaluation.describe(), highlight=False)
    console.print(
        f"Training in {trainer.precision.describe()}, {accum_steps} micro-batch(es) per step."
    )
    if trainer.precision.warning:
        console.print(f"warning: {trainer.precision.warning}")


def set_aside_later_records(files: RunFiles, step: int, console: Console) -> None:
    """A resumed run: metrics records of steps after its checkpoint move beside (not lost)."""
    moved = files.set_aside_metrics_after(step)
    if moved:
        console.print(
            f"Resuming at step {step}: moved {moved} metrics record(s) of later steps, logged "
            "after the last checkpoint, to metrics.superseded.jsonl"
        )


def progress_bar(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[speed]:,.0f} tok/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def check_steps_left(step: int, total_steps: int) -> None:
    """A resumed run already at its end (--epochs reached) is one line; nothing is touched."""
    if step >= total_steps:
        raise UserError(
            f"nothing to train: the run is at step {step} of {total_steps}; pass a larger "
            "--max-steps or --epochs to continue it"
        )
