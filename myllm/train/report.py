"""What a run reports as it goes: its metrics.jsonl records and its console lines (rank 0).

The loop (myllm/train/loop.py) computes and calls these at its events, as mlx-lm's train() calls
its TrainingCallback (on_train_loss_report, on_val_loss_report): the loop stays about training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from myllm.config.settings import TRAINING_SAMPLE
from myllm.data.tokenizers import Tokenizer, unit_name
from myllm.generate.loop import generate_tokens
from myllm.run.files import MetricsLog
from myllm.train.interrupts import GracefulStop, until_stopped


@dataclass
class TrainResult:
    """How a run ended: what the CLI reports and the tests check."""

    step: int
    train_loss: float | None
    best_val_loss: float | None
    checkpoint_dir: Path
    interrupted_by: int | None = None
    exit_code: int = 0


@dataclass
class ThroughputWindow:
    """The steps since the last log point and when they started: the tokens-per-second rate."""

    start: float
    steps: int = 0
    speed: float | None = 0.0  # the rate at the last log point


class RunReport:
    """metrics.jsonl and the console for one run; ranks other than 0 write and print nothing."""

    def __init__(self, console: Console, metrics: MetricsLog, is_main: bool, tokenizer_mode: str):
        self.console = console
        self.metrics = metrics
        self.is_main = is_main
        self.unit = unit_name(tokenizer_mode)

    def on_train_loss(self, record: dict[str, Any]) -> None:
        self.metrics.write(record)

    def on_val_loss(self, record: dict[str, Any]) -> None:
        self.metrics.write(record)
        if self.is_main:
            val_loss = record["val_loss"]
            self.console.print(
                f"step {record['step']}: train loss {record['train_loss']:.4f}, "
                f"val loss {val_loss:.4f} ({val_loss / math.log(2):.4f} bits per {self.unit})"
            )

    def on_evaluation_stopped(self, step: int) -> None:
        if self.is_main:
            self.console.print(f"step {step}: evaluation stopped, not recorded")

    def on_sample(self, step: int, sample: Callable[[], str]) -> None:
        if self.is_main:
            self.console.print(f"--- sample at step {step} ---")
            self.console.print(sample(), markup=False, highlight=False)

    def on_interrupted(self, step: int, last: Path, backend_name: str) -> None:
        if self.is_main:
            self.console.print(
                f"Interrupted at step {step}; saved {last}. Resume with: "
                f"myllm train --backend {backend_name} --resume {last}"
            )

    def on_end(self, directory: Path) -> None:
        if self.is_main:
            self.console.print(
                f"Checkpoints and metrics in {directory}/ (metrics.jsonl). "
                f"Look at the run: myllm plot {directory}"
            )

    def close(self) -> None:
        self.metrics.close()


def training_sample(
    decoder: Any, tokenizer: Tokenizer, seed: int, step: int, stop: GracefulStop
) -> str:
    """The sample printed during training: seeded by the run's seed and step, ended by a signal.

    `decoder` is the trainer's (myllm/backend/contract.py Decoder)."""
    prompt = tokenizer.encode("\n") if "\n" in tokenizer.char_to_idx else [0]
    rng = np.random.default_rng([seed, step])
    steps = until_stopped(generate_tokens(decoder, prompt, TRAINING_SAMPLE, rng), stop)
    return tokenizer.decode(int(ids[0]) for ids in steps)
