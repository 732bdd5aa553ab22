"""The training loop both backends share (DESIGN §3): schedule, evaluation, checkpoints, metrics.

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

from myllm.backends import load_backend
from myllm.checkpoint import Checkpoint, TrainingState, read_checkpoint, write_checkpoint
from myllm.config import ModelConfig, TrainConfig
from myllm.data import BatchSampler, prepare_corpus, read_text, validation_batches
from myllm.errors import UserError
from myllm.generation import generate_tokens
from myllm.interrupts import GracefulStop
from myllm.run_files import MetricsLog, RunFiles
from myllm.sampling import SamplingSettings
from myllm.schedule import CosineSchedule
from myllm.tokenizer import CharTokenizer

SAMPLE_SETTINGS = SamplingSettings(temperature=0.8, top_k=0, top_p=1.0, max_new_tokens=200)


@dataclass
class TrainResult:
    """How a run ended: what the CLI reports and the tests check."""

    step: int
    train_loss: float | None
    best_val_loss: float | None
    checkpoint_dir: Path
    interrupted_by: int | None = None
    exit_code: int = 0


def run_training(
    backend_name: str,
    train_config: TrainConfig,
    model_settings: dict[str, Any],
    resume: Path | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train `backend_name` as `train_config` says, from scratch or from the checkpoint `resume`."""
    console = console or Console(stderr=True, soft_wrap=True)
    backend = load_backend(backend_name)
    checkpoint = read_checkpoint(resume) if resume else None
    tokenizer = load_resume_tokenizer(resume, checkpoint) if checkpoint else None
    text = read_text(resolve_data_path(train_config, console))
    corpus = prepare_corpus(text, train_config.block_size, train_config.val_split, tokenizer)
    if checkpoint is not None:
        model_config = checkpoint.model_config
        check_resume_matches(model_config, train_config, model_settings)
    else:
        model_config = ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size,
            max_seq_len=train_config.block_size,
            **model_settings,
        )
    trainer = backend.trainer.Trainer(model_config, train_config)
    # The resolved dtype, not "auto", goes into run.json and checkpoints: a resume keeps it.
    train_config.dtype = trainer.precision.dtype
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
    run = TrainingRun(backend_name, backend.checkpoint_suffix, trainer, train_config, corpus)
    return run.run(checkpoint.training if checkpoint else TrainingState(), console, resume)


def resolve_data_path(config: TrainConfig, console: Console) -> Path:
    """The data file; the default data/input.txt is fetched (Tiny Shakespeare) on first use."""
    path = Path(config.data)
    if not path.exists() and config.data == TrainConfig.data:
        from myllm.corpora import ensure_default_corpus

        if ensure_default_corpus(path):
            console.print(f"Fetched Tiny Shakespeare to {path} (the default training text).")
    return path


def load_resume_tokenizer(resume: Path, checkpoint: Checkpoint) -> CharTokenizer:
    """The tokenizer.json beside the checkpoint, checked against the model's vocabulary."""
    tokenizer = CharTokenizer.load(resume.parent / "tokenizer.json")
    check_tokenizer_matches(tokenizer, checkpoint.model_config, resume)
    return tokenizer


def check_tokenizer_matches(tokenizer: CharTokenizer, config: ModelConfig, path: Path) -> None:
    if tokenizer.vocab_size != config.vocab_size:
        raise UserError(
            f"tokenizer has {tokenizer.vocab_size} characters but checkpoint {path} was trained "
            f"with {config.vocab_size}: use the tokenizer.json written beside that checkpoint"
        )


def check_resume_matches(
    model_config: ModelConfig, train_config: TrainConfig, model_settings: dict[str, Any]
) -> None:
    """A resumed run keeps its model: explicit model flags must agree with the checkpoint."""
    for name, value in model_settings.items():
        if getattr(model_config, name) != value:
            raise UserError(
                f"--{name.replace('_', '-')} {value} differs from the checkpoint's "
                f"{getattr(model_config, name)}: drop the flag when resuming"
            )
    if train_config.block_size != model_config.max_seq_len:
        raise UserError(
            f"--block-size {train_config.block_size} differs from the checkpoint's "
            f"{model_config.max_seq_len}: drop the flag when resuming"
        )


class TrainingRun:
    """One run of the loop: owns the sampler, the schedule and the run directory's files."""

    def __init__(self, backend_name, suffix, trainer, config: TrainConfig, corpus) -> None:
        self.backend_name = backend_name
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

    # --- the loop ---

    def run(self, state: TrainingState, console: Console, resume: Path | None) -> TrainResult:
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
            task = progress.add_task(
                "train", total=self.total_steps, completed=state.step, loss=math.nan, speed=0.0
            )
            while state.step < self.total_steps:
                # Data-parallel ranks stop at the same step, and all report the signal one got.
                stop.requested = self.trainer.max_over_ranks(stop.requested or 0) or None
                if stop.requested is not None:
                    break
                x, y = self.sampler.batch(state.step)
                lr = self.schedule.lr_at(state.step)
                pending.append(self.trainer.train_step(x, y, lr))
                state.step += 1
                window_steps += 1
                epoch_done = state.step % self.sampler.steps_per_epoch == 0
                last = state.step == self.total_steps
                evaluation_due = self.evaluation_due(epoch_done, last)
                if state.step % self.config.log_interval == 0 or epoch_done or evaluation_due:
                    elapsed = time.perf_counter() - window_start
                    self.log_steps(
                        pending,
                        lr,
                        window_steps * tokens_per_step / elapsed,
                        metrics,
                        time.perf_counter() - run_start,
                    )
                    progress.update(
                        task,
                        completed=state.step,
                        loss=self.last_train_loss,
                        speed=window_steps * tokens_per_step / elapsed,
                    )
                    pending, window_steps = [], 0
                    window_start = time.perf_counter()
                if evaluation_due:
                    self.evaluate(metrics)
                    window_start = time.perf_counter()
                if epoch_done:
                    self.end_of_epoch()
                    window_start = time.perf_counter()
            if pending:  # interrupted between log points
                self.log_steps(pending, lr, None, metrics, time.perf_counter() - run_start)
            self.save("checkpoint_last")  # still under GracefulStop: a 2nd signal leaves no litter
        metrics.close()
        return self.finish(stop.requested, stop.exit_code)

    def evaluation_due(self, epoch_done: bool, last: bool) -> bool:
        """Every eval_interval steps and at the end; without it, after each epoch and at the end."""
        if self.config.eval_interval is not None:
            return self.state.step % self.config.eval_interval == 0 or last
        return epoch_done or last

    # --- pieces of the loop ---

    def open_files(self, resume: Path | None) -> MetricsLog:
        if self.is_main:
            self.files.create_directory()
            self.corpus.tokenizer.save(self.files.tokenizer)
            self.files.write_run_info(
                {
                    "backend": self.backend_name,
                    "device": self.trainer.describe_device(),
                    "versions": self.trainer.versions(),
                    "model_config": self.trainer.model.config.to_dict(),
                    "train_config": self.config.to_dict(),
                    "world_size": self.trainer.world_size,
                    "resumed_from": str(resume) if resume else None,
                    "total_steps": self.total_steps,
                    "precision": {
                        "dtype": self.trainer.precision.dtype,
                        "compiled": self.trainer.compiled,
                        "grad_accum_steps": self.config.grad_accum_steps,
                    },
                }
            )
            self.console.print(
                f"Training in {self.trainer.precision.describe()}, "
                f"{self.config.grad_accum_steps} micro-batch(es) per step."
            )
            if self.trainer.precision.warning:
                self.console.print(f"warning: {self.trainer.precision.warning}")
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

    def log_steps(self, pending, lr, tokens_per_second, metrics, elapsed_s) -> None:
        """Bring the pending losses to the host, stop on a non-finite one, write a metrics line."""
        values = self.trainer.to_host([value for pair in pending for value in pair])
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
            "elapsed_s": round(elapsed_s, 3),
            "tokens_seen": self.state.step * self.config.batch_size * self.config.block_size,
            "skipped_steps": self.trainer.skipped_steps(),  # float16 overflows, this process
        }
        metrics.write(record)

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
            config.eval_iters,
            config.seed,
        )
        val_loss = self.trainer.evaluate(batches)
        if not math.isfinite(val_loss):  # e.g. weights ruined by a step whose loss was still finite
            self.stop_on_non_finite(self.state.step, f"validation loss {val_loss}")
        metrics.write(
            {
                "step": self.state.step,
                "epoch": self.sampler.epoch_of(self.state.step - 1),
                "val_loss": val_loss,
                "train_loss": self.last_train_loss,
                "tokens_seen": self.state.step * config.batch_size * config.block_size,
            }
        )
        if self.is_main:
            self.console.print(
                f"step {self.state.step}: train loss {self.last_train_loss:.4f}, "
                f"val loss {val_loss:.4f}"
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
        steps = generate_tokens(self.trainer.decoder(), prompt, SAMPLE_SETTINGS, rng)
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
                self.print_sample()
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
