"""The training loop both backends share: schedule, evaluation, checkpoints, metrics.

A backend's trainer.py supplies one optimizer step, evaluation and its checkpoint state; this module
decides when each happens, so `--backend torch` and `--backend mlx` behave the same way.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from myllm.checkpoint.io import write_checkpoint
from myllm.checkpoint.state import TrainingState
from myllm.config.settings import TrainConfig
from myllm.data.sampler import BatchSampler, validation_batches
from myllm.run.directory import claim_run_directory
from myllm.run.files import BEST_CHECKPOINT, LAST_CHECKPOINT, RunFiles, epoch_checkpoint
from myllm.train.divergence import diverged, divergence, loss_ceiling
from myllm.train.evaluation import bits_per_character
from myllm.train.evaluation_plan import plan_evaluation
from myllm.train.interrupts import GracefulStop, until_stopped
from myllm.train.report import RunReport, ThroughputWindow, TrainResult, training_sample
from myllm.train.run_start import check_steps_left, check_warmup_fits, open_run_files, progress_bar
from myllm.train.schedule import CosineSchedule


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
        self.run_start_time = time.perf_counter()  # set again when the loop starts
        self.trainer = trainer
        self.config = config
        self.corpus = corpus
        self.is_main = trainer.rank == 0
        self.files = RunFiles(Path(config.checkpoint_dir), suffix)
        self.sampler = BatchSampler(
            corpus.train_tokens, config.block_size, config.batch_size, config.seed,
            rank=trainer.rank, world_size=trainer.world_size,
        )  # fmt: skip
        epoch_steps = config.epochs * self.sampler.steps_per_epoch
        self.total_steps = min(config.max_steps or epoch_steps, epoch_steps)
        check_warmup_fits(config, self.total_steps)
        self.loss_ceiling = loss_ceiling(corpus.tokenizer.vocab_size)
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
        check_steps_left(state.step, self.total_steps)
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
        self.report = RunReport(
            console, open_run_files(self, resume), self.is_main, self.config.tokenizer
        )
        pending: list[tuple[Any, Any]] = []
        window = ThroughputWindow(time.perf_counter())
        self.run_start_time = time.perf_counter()
        with GracefulStop() as stop, progress_bar(console, self.is_main) as progress:
            self.stop = stop
            self.last_save_time = time.monotonic()
            if state.evaluation_pending:  # the evaluation a signal cut short before the save
                self.last_train_loss = state.last_train_loss
                self.evaluate()
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
                pending.append(self.trainer.train_step(x, y, lr, batch_rows=rows, step=state.step))
                state.step += 1
                window.steps += 1
                if self.after_step(pending, lr, window):
                    progress.update(
                        task, completed=state.step, loss=self.last_train_loss, speed=window.speed
                    )
                    pending = []
            if pending:  # interrupted between log points
                self.log_steps(pending, lr, None)
            self.save(LAST_CHECKPOINT)  # still under GracefulStop: a 2nd signal leaves no litter
        self.report.close()
        return self.finish(stop.requested, stop.exit_code)

    def after_step(self, pending, lr: float, window: ThroughputWindow) -> bool:
        """Log, evaluate, end the epoch and save as the step just taken asks; True if it logged.

        The window's clock restarts after each, so the rate counts training steps only.
        """
        step = self.state.step
        epoch_done = step % self.sampler.steps_per_epoch == 0
        last = step == self.total_steps
        evaluation_due = self.evaluation_due(epoch_done, last)
        logged = step % self.config.log_interval == 0 or epoch_done or evaluation_due
        if logged:
            window.speed = self.log_steps(pending, lr, window)
            window.steps = 0
            window.start = time.perf_counter()
        if evaluation_due:
            self.evaluate()
            window.start = time.perf_counter()
        if epoch_done:
            self.end_of_epoch()
            window.start = time.perf_counter()
        if self.periodic_save_due(last):
            self.save(LAST_CHECKPOINT)
            window.start = time.perf_counter()
        return logged

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

    def log_steps(self, pending, lr, window: ThroughputWindow | None) -> float | None:
        """Bring the pending losses to the host, stop on a diverged one, write a metrics line.

        The rate is taken after to_host, which waits for the queued steps, so an asynchronous
        device's queue drain is counted. Returns the rate (None without a window, e.g. when
        interrupted between log points).
        """
        values = self.trainer.to_host([value for pair in pending for value in pair])
        now = time.perf_counter()
        tokens = window.steps * self.config.batch_size * self.config.block_size if window else 0
        tokens_per_second = tokens / (now - window.start) if window is not None else None
        losses, grad_norms = values[0::2], values[1::2]
        first_step = self.state.step - len(pending) + 1
        for offset, (loss, norm) in enumerate(zip(losses, grad_norms, strict=True)):
            problem = divergence(loss, norm, self.loss_ceiling)
            if problem is not None:
                raise diverged(self.files, self.config, first_step + offset, problem)
        self.last_train_loss = float(np.mean(losses))
        self.state.loss = losses[-1]
        self.report.on_train_loss(
            {
                "step": self.state.step,
                "epoch": self.sampler.epoch_of(self.state.step - 1),
                "train_loss": self.last_train_loss,
                "lr": lr,
                "tokens_per_second": tokens_per_second,
                "elapsed_s": round(now - self.run_start_time, 3),
                "tokens_seen": self.state.step * self.config.batch_size * self.config.block_size,
                "skipped_steps": self.trainer.skipped_steps(),  # float16 overflows, whole run
            }
        )
        return tokens_per_second

    def evaluate(self) -> None:
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
            self.report.on_evaluation_stopped(self.state.step)
            return
        if not math.isfinite(val_loss) or val_loss > self.loss_ceiling:  # e.g. ruined weights
            raise diverged(self.files, config, self.state.step, f"validation loss {val_loss:.4g}")
        self.report.on_val_loss(
            {
                "step": self.state.step,
                "epoch": self.sampler.epoch_of(self.state.step - 1),
                "val_loss": val_loss,
                "val_bpc": bits_per_character(val_loss),  # per byte in byte mode
                "train_loss": self.last_train_loss,
                "tokens_seen": self.state.step * config.batch_size * config.block_size,
            }
        )
        if self.state.best_val_loss is None or val_loss < self.state.best_val_loss:
            self.state.best_val_loss = val_loss
            self.save(BEST_CHECKPOINT)

    def end_of_epoch(self) -> None:
        epoch = self.state.step // self.sampler.steps_per_epoch
        self.state.epoch = epoch
        self.save(epoch_checkpoint(epoch))
        if epoch % self.config.sample_every_epochs == 0:
            self.print_sample()

    def save(self, name: str) -> None:
        if name == LAST_CHECKPOINT:
            self.last_save_time = time.monotonic()
        checkpoint = self.trainer.checkpoint()
        # Every rank checks (data-parallel ranks hold the same weights), so all stop together.
        if not all(np.isfinite(weights).all() for weights in checkpoint.weights.values()):
            raise diverged(
                self.files, self.config, self.state.step, f"non-finite weights when saving {name}"
            )
        if not self.is_main:
            return
        checkpoint.training = TrainingState(**vars(self.state))
        checkpoint.train_config = self.config.to_dict()
        write_checkpoint(self.files.checkpoint(name), checkpoint)

    def print_sample(self) -> None:
        self.report.on_sample(
            self.state.step,
            lambda: training_sample(
                self.trainer.decoder(),
                self.corpus.tokenizer,
                self.config.seed,
                self.state.step,
                self.stop,
            ),
        )

    def finish(self, signal_number: int | None, exit_code: int) -> TrainResult:
        last = self.files.checkpoint(LAST_CHECKPOINT)
        if signal_number is not None:
            self.report.on_interrupted(self.state.step, last, self.backend_name)
        elif self.is_main:
            with GracefulStop() as self.stop:  # the run is saved: a signal ends the sample
                self.print_sample()
            if self.stop.requested is not None:
                signal_number, exit_code = self.stop.requested, self.stop.exit_code
        self.report.on_end(self.files.directory)
        self.trainer.close()
        return TrainResult(
            step=self.state.step,
            train_loss=self.last_train_loss,
            best_val_loss=self.state.best_val_loss,
            checkpoint_dir=self.files.directory,
            interrupted_by=signal_number,
            exit_code=exit_code if signal_number is not None else 0,
        )
