"""`myllm compare`: one configuration trained on both backends from one seed, loss by loss.

The two runs start from the same numpy-drawn weights (myllm/train/init.py) and draw the same
dropout masks (myllm/train/dropout.py), so their curves are the same curve up to float rounding.
Each backend trains in a `myllm train` process of its own, both at once, each on half of the
cores: a machine that slows down slows both alike, and a crash in one framework cannot take the
other's run with it. Their metrics.jsonl are then read and set side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from myllm.atomic import atomic_path
from myllm.errors import UserError

COMPARED_BACKENDS = ("torch", "mlx")


@dataclass
class LossPair:
    """One logged step: each backend's loss and their absolute difference."""

    step: int
    torch: float
    mlx: float

    @property
    def difference(self) -> float:
        return abs(self.torch - self.mlx)


@dataclass
class Comparison:
    """Both runs' logged train losses and validation losses, step by step."""

    train: list[LossPair] = field(default_factory=list)
    val: list[LossPair] = field(default_factory=list)

    def max_difference(self, kind: str) -> float | None:
        pairs = getattr(self, kind)
        return max((pair.difference for pair in pairs), default=None)

    def to_dict(self, settings: dict[str, Any]) -> dict[str, Any]:
        final = self.val[-1] if self.val else None
        return {
            "settings": settings,
            "max_train_loss_difference": self.max_difference("train"),
            "max_val_loss_difference": self.max_difference("val"),
            "final_val_loss": {"torch": final.torch, "mlx": final.mlx} if final else None,
            "train": [{**vars(p), "difference": p.difference} for p in self.train],
            "val": [{**vars(p), "difference": p.difference} for p in self.val],
        }


def run_both(config_file: Path, out: Path, overwrite: bool) -> dict[str, Path]:
    """Train each backend from `config_file` into out/<backend>, both processes at once.

    A failed run is a UserError carrying its last stderr line; its log stays in out/.
    """
    threads = str(max(1, (os.cpu_count() or 2) // len(COMPARED_BACKENDS)))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    processes = {}
    for backend in COMPARED_BACKENDS:
        command = [sys.executable, "-m", "myllm", "train", "--config", str(config_file)]
        command += ["--backend", backend, "--checkpoint-dir", str(out / backend)]
        command += ["--overwrite"] if overwrite else []
        log = (out / f"{backend}.log").open("w")
        processes[backend] = (subprocess.Popen(command, stdout=log, stderr=log, env=env), log)
    for backend, (process, log) in processes.items():
        process.wait()
        log.close()
        if process.returncode != 0:
            lines = (out / f"{backend}.log").read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else "no output"
            raise UserError(
                f"the {backend} run failed (exit {process.returncode}): {last}; "
                f"its log is {out / f'{backend}.log'}"
            )
    return {backend: out / backend / "metrics.jsonl" for backend in COMPARED_BACKENDS}


def read_losses(metrics: Path) -> tuple[dict[int, float], dict[int, float]]:
    """(train losses, validation losses) by step, from one run's metrics.jsonl."""
    train, val = {}, {}
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        if "val_loss" in record:
            val[record["step"]] = record["val_loss"]
        elif "train_loss" in record:
            train[record["step"]] = record["train_loss"]
    return train, val


def compare_metrics(torch_metrics: Path, mlx_metrics: Path) -> Comparison:
    """The steps both runs logged, each with both losses."""
    (torch_train, torch_val), (mlx_train, mlx_val) = map(read_losses, (torch_metrics, mlx_metrics))

    def pairs(first: dict[int, float], second: dict[int, float]) -> list[LossPair]:
        return [
            LossPair(step, first[step], second[step]) for step in sorted(first) if step in second
        ]

    return Comparison(train=pairs(torch_train, mlx_train), val=pairs(torch_val, mlx_val))


def plot_comparison(comparison: Comparison, out: Path, title: str) -> None:
    """Both train curves overlaid (validation points on them), their difference below: a PNG."""
    from myllm.plot import new_figure

    figure = new_figure((8.0, 6.0))
    losses, differences = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for index, backend in enumerate(COMPARED_BACKENDS):
        style = {"color": f"C{index}", "linestyle": "-" if index == 0 else "--"}
        steps = [pair.step for pair in comparison.train]
        losses.plot(steps, [getattr(p, backend) for p in comparison.train], label=backend, **style)
        val_steps = [pair.step for pair in comparison.val]
        val_losses = [getattr(p, backend) for p in comparison.val]
        losses.plot(val_steps, val_losses, marker="o", label=f"{backend} validation", **style)
    losses.set_ylabel("loss")
    losses.set_title(title)
    losses.legend()
    differences.semilogy(
        [p.step for p in comparison.train],
        [max(p.difference, 1e-9) for p in comparison.train],
        color="C2",
        label="|torch - mlx| train loss",
    )
    differences.set_xlabel("step")
    differences.set_ylabel("|difference|")
    differences.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as temp:
        figure.savefig(temp, format="png", dpi=figure.dpi)
