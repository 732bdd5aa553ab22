"""What dropout costs a training step: tokens/s at the model's dropout divided by at 0, per backend.

The default model (d_model 384, 6 layers, 6 heads, block 128, batch 16), float32 on the CPU. For
each backend one trainer at --dropout and one at 0 are built, then timed in turn, round after
round (torch at p, torch at 0, MLX at p, MLX at 0, ...), so a machine that slows down slows every
cell alike; the median of the rounds is reported. The code measured is the one on PYTHONPATH, so
the same script times an older checkout (`--label before`) and this one (`--label after`); each
label's figures are stored under its name in the JSON (benchmarks/results/dropout_cost.json).

    PYTHONPATH=. .venv/bin/python benchmarks/dropout_cost.py --label after [--rounds 3 --steps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch  # isort: skip  (torch before mlx.core: see parity_tests/conftest.py)
import myllm_mlx  # isort: skip

import mlx.core as mx
import numpy as np

from myllm.backend.registry import load_backend
from myllm.config.settings import ModelConfig, TrainConfig

RESULTS = Path(__file__).resolve().parent / "results" / "dropout_cost.json"
BATCH, BLOCK = 16, 128


def make_trainer(backend_name: str, dropout: float):
    model = ModelConfig(vocab_size=65, max_seq_len=BLOCK, dropout=dropout)
    train = TrainConfig(batch_size=BATCH, block_size=BLOCK, device="cpu", dtype="float32")
    return load_backend(backend_name).Trainer(model, train)


def timed_steps(trainer, batch, steps: int) -> float:
    """Tokens per second over `steps` optimizer steps, forced to the host at the end."""
    start = time.perf_counter()
    results = [trainer.train_step(*batch, 3e-4) for _ in range(steps)]
    trainer.to_host([loss for loss, _ in results])
    return steps * BATCH * BLOCK / (time.perf_counter() - start)


def measure(dropout: float, rounds: int, steps: int) -> dict:
    rng = np.random.default_rng(0)
    batch = tuple(rng.integers(0, 65, size=(BATCH, BLOCK)).astype(np.int32) for _ in range(2))
    cells = {(name, p): make_trainer(name, p) for name in ("torch", "mlx") for p in (dropout, 0.0)}
    for trainer in cells.values():
        timed_steps(trainer, batch, 1)  # warm-up: compilation, allocator
    rates: dict[tuple[str, float], list[float]] = {cell: [] for cell in cells}
    for _ in range(rounds):
        for cell, trainer in cells.items():
            rates[cell].append(timed_steps(trainer, batch, steps))
    report = {}
    for name in ("torch", "mlx"):
        with_dropout = statistics.median(rates[(name, dropout)])
        without = statistics.median(rates[(name, 0.0)])
        report[name] = {
            f"tokens_per_second_dropout_{dropout}": round(with_dropout, 1),
            "tokens_per_second_dropout_0": round(without, 1),
            "ratio": round(with_dropout / without, 3),
            "rounds": {f"{p}": [round(r, 1) for r in rates[(name, p)]] for p in (dropout, 0.0)},
        }
    return report


def code_version() -> str:
    root = Path(myllm_mlx.__file__).resolve().parents[1]
    result = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="e.g. before, after")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed cell")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = measure(args.dropout, args.rounds, args.steps)
    entry = {
        "code": code_version(),
        "model": {"d_model": 384, "n_layers": 6, "n_heads": 6, "block": BLOCK, "batch": BATCH},
        "dtype": "float32",
        "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "versions": {"torch": torch.__version__, "mlx": mx.__version__},
        "command": f"benchmarks/dropout_cost.py --label {args.label} --dropout {args.dropout} "
        f"--rounds {args.rounds} --steps {args.steps}",
        "results": report,
    }
    stored = json.loads(args.json.read_text()) if args.json.exists() else {}
    stored[args.label] = entry
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stored, indent=2) + "\n")
    for name, row in report.items():
        print(f"{args.label} {name}: dropout {args.dropout} / 0 = {row['ratio']}  {row}")


if __name__ == "__main__":
    main()
