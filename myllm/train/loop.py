"""The training loop both backends share: schedule, evaluation, checkpoints, metrics.

A backend's trainer.py supplies one optimizer step, evaluation and its checkpoint state; this module
decides when each happens, so `--backend torch` and `--backend mlx` behave the same way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from myllm.checkpoint.io import write_checkpoint
from myllm.checkpoint.state import TrainingState
from myllm.config.settings import TRAINING_SAMPLE, TrainConfig
from myllm.data.sampler import BatchSampler, validation_batches
from myllm.data.tokenizers import unit_name
from myllm.errors import UserError
from myllm.generate.loop import generate_tokens
from myllm.run.directory import claim_run_directory, holds_run, remove_run_files
from myllm.run.files import MetricsLog, RunFiles
from myllm.train.evaluation import bits_per_character
from myllm.train.evaluation_plan import plan_evaluation
from myllm.train.interrupts import GracefulStop, until_stopped
from myllm.train.schedule import CosineSchedule


@dataclass
class TrainResult:
    """How a run ended: what the CLI reports and the tests check."""

    step: int
    train_loss: float | None
    best_val_loss: float | None
    checkpoint_dir: Path
    interrupted_by: int | None = None
    exit_code: int = 0


class TrainingRun:
    """One run of the loop: owns the sampler, the schedule and the run directory's files."""

    def __init__(
        self,
        backend_name,
        suffix,
        trainer,
        config: TrainConfig,
        corpus,
        overwrite: bool = False,
        continues_in_place: bool = False,
    ) -> None:
        self.backend_name = backend_name
        self.overwrite = overwrite  # a new run replaces the run in its directory
        self.continues_in_place = continues_in_place  # a resumed run writes where it was
        self.stop = GracefulStop()  # replaced by the one in force while the loop runs
        self.last_save_time = time.monotonic()
        self.trainer = trainer
        self.config = config
        self.corpus = corpus
        self.is_main = trainer.rank == 0
        self.files = RunFiles(Path(config.checkpoint_dir), suffix)
        self.sampler = BatchSampler(
            corpus.train_tokens,
            config.block_size,
            config.batch_size,
            config.seed,
            rank=trainer.rank,
            world_size=trainer.world_size,
        )
        epoch_steps = config.epochs * self.sampler.steps_per_epoch
        self.total_steps = min(config.max_steps or epoch_steps, epoch_steps)
        self.schedule = CosineSchedule(
            config.lr, self.total_steps, config.warmup_steps, config.min_lr_ratio
        )
        self.state = TrainingState()
        self.last_train_loss: float | None = None
        self.evaluation = plan_evaluation(
            len(corpus.val_tokens), config.block_size, config.batch_size, config.eval_iters
        )

    # --- the loop ---

    def run(self, state: TrainingState, console: Console, resume: Path | None) -> TrainResult:
        """Train while holding the run directory's lock (rank 0 holds it for all ranks)."""
        lock = claim_run_directory(
            self.files, self.trainer, self.overwrite, self.continues_in_place, self.is_main
        )
        try:
            return self.train(state, console, resume)
        finally:
            if lock is not None:
                lock.release()

    def train(self, state: TrainingState, console: Console, resume: Path | None) -> TrainResult:
        self.state = state
        self.console = console
        if state.step >= self.total_steps and self.is_main:
            console.print(
                f"Nothing to train: the run is at step {state.step} of {self.total_steps}; "
                "pass a larger --max-steps or --epochs to continue it."
            )
        metrics = self.open_files(resume)
        pending: list[tuple[Any, Any]] = []
        window_start, window_steps = time.perf_counter(), 0
        run_start = time.perf_counter()
        tokens_per_step = self.config.batch_size * self.config.block_size
        with GracefulStop() as stop, self.progress_bar() as progress:
            self.stop = stop
            self.last_save_time = time.monotonic()
            if state.evaluation_pending:  # the evaluation a signal cut short before the save
                self.last_train_loss = state.last_train_loss
                self.evaluate(metrics)
            task = progress.add_task(
                "train", total=self.total_steps, completed=state.step, loss=math.nan, speed=0.0
            )
            while state.step < self.total_steps:
                # Data-parallel ranks stop at the same step, and all report the signal one got.
                # They agree where the host has just waited for the device anyway (the start and
                # each log point), so a GPU's queue is not drained for it every step.
                if self.trainer.world_size == 1 or not pending:
                    stop.requested = self.trainer.max_over_ranks(stop.requested or 0) or None
                    if stop.requested is not None:
                        break
                x, y = self.sampler.batch(state.step)
                lr = self.schedule.lr_at(state.step)
                rows = self.sampler.rows_in_batch(state.step)
                pending.append(self.trainer.train_step(x, y, lr, batch_rows=rows))
                state.step += 1
                window_steps += 1
                epoch_done = state.step % self.sampler.steps_per_epoch == 0
                last = state.step == self.total_steps
                evaluation_due = self.evaluation_due(epoch_done, last)
                if state.step % self.config.log_interval == 0 or epoch_done or evaluation_due:
                    window = (window_start, window_steps * tokens_per_step)
                    speed = self.log_steps(pending, lr, window, metrics, run_start)
                    progress.update(
                        task, completed=state.step, loss=self.last_train_loss, speed=speed
                    )
                    pending, window_steps = [], 0
                    window_start = time.perf_counter()
                if evaluation_due:
                    self.evaluate(metrics)
                    window_start = time.perf_counter()
                if epoch_done:
                    self.end_of_epoch()
                    window_start = time.perf_counter()
                if self.periodic_save_due(last):
                    self.save("checkpoint_last")
                    window_start = time.perf_counter()
            if pending:  # interrupted between log points
                self.log_steps(pending, lr, None, metrics, run_start)
            self.save("checkpoint_last")  # still under GracefulStop: a 2nd signal leaves no litter
        metrics.close()
        return self.finish(stop.requested, stop.exit_code)

    def periodic_save_due(self, last: bool) -> bool:
        """checkpoint_last every save_interval steps, and every save_minutes at a log point.

        The last step saves anyway. Data-parallel ranks agree on the clock through
        max_over_ranks, called by every rank at the same log points, so all save at one step.
        """
        config = self.config
        by_steps = config.save_interval is not None and self.state.step % config.save_interval == 0
        by_clock = False
        if config.save_minutes > 0 and self.state.step % config.log_interval == 0:
            elapsed = time.monotonic() - self.last_save_time
            by_clock = bool(self.trainer.max_over_ranks(int(elapsed >= config.save_minutes * 60)))
        return (by_steps or by_clock) and not last and self.stop.requested is None

    def evaluation_due(self, epoch_done: bool, last: bool) -> bool:
        """Every eval_interval steps and at the end; without it, after each epoch and at the end."""
        if self.config.eval_interval is not None:
            return self.state.step % self.config.eval_interval == 0 or last
        return epoch_done or last

    # --- pieces of the loop ---

    def open_files(self, resume: Path | None) -> MetricsLog:
        """Write tokenizer.json and run.json; a run resumed in place adds to its run.json."""
        if self.is_main:
            self.files.create_directory()
            if self.overwrite and holds_run(self.files.directory):
                remove_run_files(self.files.directory)
                self.console.print(f"--overwrite: removed the run in {self.files.directory}")
            self.corpus.tokenizer.save(self.files.tokenizer)
            info = {
                "backend": self.backend_name,
                "device": self.trainer.describe_device(),
                "matmul_precision": self.trainer.matmul_precision,
                "versions": self.trainer.versions(),
                "model_config": self.trainer.model.config.to_dict(),
                "train_config": self.config.to_dict(),
                "world_size": self.trainer.world_size,
                "resumed_from": str(resume) if resume else None,
                "total_steps": self.total_steps,
                "tokenizer": self.config.tokenizer,
                "evaluation": self.evaluation.to_dict(),
                "precision": {
                    **self.trainer.precision.record(),  # dtype, why, decoding's dtype
                    "compiled": self.trainer.compiled,
                    "grad_accum_steps": self.config.grad_accum_steps,
                },
            }
            if self.continues_in_place:
                self.files.add_resume_to_run_info({**info, "step": self.state.step})
            else:
                self.files.write_run_info(info)
            if self.evaluation.reason != "--eval-iters":
                self.console.print(self.evaluation.describe(), highlight=False)
            self.console.print(
                f"Training in {self.trainer.precision.describe()}, "
                f"{self.config.grad_accum_steps} micro-batch(es) per step."
            )
            if self.trainer.precision.warning:
                self.console.print(f"warning: {self.trainer.precision.warning}")
            moved = self.files.set_aside_metrics_after(self.state.step) if resume else 0
            if moved:
                self.console.print(
                    f"Resuming at step {self.state.step}: moved {moved} metrics record(s) of later "
                    "steps, logged after the last checkpoint, to metrics.superseded.jsonl"
                )
        return MetricsLog(self.files.metrics, append=resume is not None, enabled=self.is_main)

    def progress_bar(self) -> Progress:
        return Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[speed]:,.0f} tok/s"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.is_main,
        )

    def log_steps(self, pending, lr, window, metrics, run_start) -> float | None:
        """Bring the pending losses to the host, stop on a non-finite one, write a metrics line.

        `window` is (start time, tokens trained since): the rate is taken after to_host, which
        waits for the queued steps, so an asynchronous device's queue drain is counted. Returns
        the rate (None without a window, e.g. when interrupted between log points).
        """
        values = self.trainer.to_host([value for pair in pending for value in pair])
        now = time.perf_counter()
        tokens_per_second = window[1] / (now - window[0]) if window is not None else None
        losses, grad_norms = values[0::2], values[1::2]
        first_step = self.state.step - len(pending) + 1
        for offset, (loss, norm) in enumerate(zip(losses, grad_norms, strict=True)):
            if not (math.isfinite(loss) and math.isfinite(norm)):
                self.stop_on_non_finite(first_step + offset, f"loss {loss}, gradient norm {norm}")
        self.last_train_loss = float(np.mean(losses))
        self.state.loss = losses[-1]
        record = {
            "step": self.state.step,
            "epoch": self.sampler.epoch_of(self.state.step - 1),
            "train_loss": self.last_train_loss,
            "lr": lr,
            "tokens_per_second": tokens_per_second,
            "elapsed_s": round(now - run_start, 3),
            "tokens_seen": self.state.step * self.config.batch_size * self.config.block_size,
            "skipped_steps": self.trainer.skipped_steps(),  # float16 overflows, whole run
        }
        metrics.write(record)
        return tokens_per_second

    def stop_on_non_finite(self, step: int, what: str) -> None:
        """Stop before anything non-finite is saved; the checkpoints on disk stay as they are."""
        latest = self.files.latest_checkpoint()
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint written"
        raise UserError(
            f"training diverged at step {step} ({what}); {kept}; "
            f"lower the learning rate (now --lr {self.config.lr})",
            exit_code=1,
        )

    def evaluate(self, metrics: MetricsLog) -> None:
        config = self.config
        batches = validation_batches(
            self.corpus.val_tokens,
            config.block_size,
            config.batch_size,
            self.evaluation.eval_iters,
            config.seed,
        )
        val_loss = self.trainer.evaluate(until_stopped(batches, self.stop))
        # A signal cut the evaluation short: its loss covers part of the split, so it is dropped,
        # and the checkpoint saved on the way out asks a resumed run to do it again.
        self.stop.requested = self.trainer.max_over_ranks(self.stop.requested or 0) or None
        self.state.evaluation_pending = self.stop.requested is not None
        self.state.last_train_loss = self.last_train_loss
        if self.state.evaluation_pending:
            if self.is_main:
                self.console.print(f"step {self.state.step}: evaluation stopped, not recorded")
            return
        if not math.isfinite(val_loss):  # e.g. weights ruined by a step whose loss was still finite
            self.stop_on_non_finite(self.state.step, f"validation loss {val_loss}")
        metrics.write(
            {
                "step": self.state.step,
                "epoch": self.sampler.epoch_of(self.state.step - 1),
                "val_loss": val_loss,
                "val_bpc": bits_per_character(val_loss),  # per byte in byte mode
                "train_loss": self.last_train_loss,
                "tokens_seen": self.state.step * config.batch_size * config.block_size,
            }
        )
        if self.is_main:
            self.console.print(
                f"step {self.state.step}: train loss {self.last_train_loss:.4f}, "
                f"val loss {val_loss:.4f} ({val_loss / math.log(2):.4f} bits per "
                f"{unit_name(config.tokenizer)})"
            )
        if self.state.best_val_loss is None or val_loss < self.state.best_val_loss:
            self.state.best_val_loss = val_loss
            self.save("best_model")

    def end_of_epoch(self) -> None:
        epoch = self.state.step // self.sampler.steps_per_epoch
        self.state.epoch = epoch
        self.save(f"checkpoint_epoch_{epoch}")
        if epoch % self.config.sample_every_epochs == 0:
            self.print_sample()

    def save(self, name: str) -> None:
        if name == "checkpoint_last":
            self.last_save_time = time.monotonic()
        checkpoint = self.trainer.checkpoint()
        # Every rank checks (data-parallel ranks hold the same weights), so all stop together.
        if not all(np.isfinite(weights).all() for weights in checkpoint.weights.values()):
            self.stop_on_non_finite(self.state.step, f"non-finite weights when saving {name}")
        if not self.is_main:
            return
        checkpoint.training = TrainingState(**vars(self.state))
        checkpoint.train_config = self.config.to_dict()
        write_checkpoint(self.files.checkpoint(name), checkpoint)

    def sample_text(self) -> str:
        tokenizer = self.corpus.tokenizer
        prompt = tokenizer.encode("\n") if "\n" in tokenizer.char_to_idx else [0]
        rng = np.random.default_rng([self.config.seed, self.state.step])
        steps = until_stopped(
            generate_tokens(self.trainer.decoder(), prompt, TRAINING_SAMPLE, rng), self.stop
        )
        return tokenizer.decode(int(ids[0]) for ids in steps)

    def print_sample(self) -> None:
        if self.is_main:
            self.console.print(f"--- sample at step {self.state.step} ---")
            self.console.print(self.sample_text(), markup=False, highlight=False)

    def finish(self, signal_number: int | None, exit_code: int) -> TrainResult:
        last = self.files.checkpoint("checkpoint_last")
        if self.is_main:
            if signal_number is not None:
                self.console.print(
                    f"Interrupted at step {self.state.step}; saved {last}. Resume with: "
                    f"myllm train --backend {self.backend_name} --resume {last}"
                )
            else:
                with GracefulStop() as self.stop:  # the run is saved: a signal ends the sample
                    self.print_sample()
                if self.stop.requested is not None:
                    signal_number, exit_code = self.stop.requested, self.stop.exit_code
            self.console.print(
                f"Checkpoints and metrics in {self.files.directory}/ (metrics.jsonl). "
                f"Look at the run: myllm plot {self.files.directory}"
            )
        self.trainer.close()
        return TrainResult(
            step=self.state.step,
            train_loss=self.last_train_loss,
            best_val_loss=self.state.best_val_loss,
            checkpoint_dir=self.files.directory,
            interrupted_by=signal_number,
            exit_code=exit_code if signal_number is not None else 0,
        )
