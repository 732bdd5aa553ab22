"""Issue 24's acceptance: one seed, torch vs MLX, dropout on, every logged step within 1e-4.

Tiny model (d_model 64, 2 layers, 4 heads, block 32, batch 8), dropout 0.1, 200 steps, float32 on
the CPU, seed 1234: one process, --grad-accum-steps 2, and two data-parallel ranks (torchrun /
mlx.launch, as tests/helpers.py launches them). Each run is `myllm train` through the real CLI;
the max |train loss difference| over the logged steps (every 10) is reported per setup, and, per
backend, how far the accumulated and two-rank runs are from the single-process one (the same
masks: only the summation order differs). The six runs go at once, one thread each.
JSON in benchmarks/results/same_seed.json.

    PYTHONPATH=. .venv/bin/python benchmarks/same_seed_acceptance.py --data tinyshakespeare.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import cli_flags, launcher, losses_by_step  # noqa: E402

SETTINGS = {
    "d_model": 64, "n_layers": 2, "n_heads": 4, "block_size": 32, "batch_size": 8,
    "dropout": 0.1, "max_steps": 200, "dtype": "float32", "device": "cpu", "seed": 1234,
    "log_interval": 10, "eval_interval": 100, "eval_iters": 10,
}  # fmt: skip
SETUPS = {"single": [], "grad_accum_2": ["--grad-accum-steps", "2"], "two_ranks": []}
TOLERANCE = 1e-4  # float32, per logged step
RESULTS = REPO / "benchmarks" / "results" / "same_seed.json"


def launch(backend: str, setup: str, data: Path, out: Path) -> subprocess.Popen:
    """One run, started: all six run at once, on one thread each (tiny models run fastest so)."""
    start = launcher(backend) if setup == "two_ranks" else [sys.executable]
    command = [*start, "-m", "myllm", "train", "--backend", backend, "--data", str(data),
               "--checkpoint-dir", str(out), *cli_flags(SETTINGS), *SETUPS[setup]]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    log = (out.parent / f"{out.name}.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def finish(process: subprocess.Popen, out: Path) -> dict[int, float]:
    if process.wait() != 0:
        log = (out.parent / f"{out.name}.log").read_text()
        raise SystemExit(f"{out.name} failed:\n{log[-2000:]}")
    return losses_by_step(out)


def max_difference(first: dict[int, float], second: dict[int, float]) -> float:
    assert first.keys() == second.keys()
    return max(abs(first[step] - second[step]) for step in first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    losses = {}
    with tempfile.TemporaryDirectory() as scratch:
        runs = {
            (backend, setup): Path(scratch) / f"{backend}-{setup}"
            for setup in SETUPS
            for backend in ("torch", "mlx")
        }
        started = {run: launch(*run, args.data.resolve(), out) for run, out in runs.items()}
        for run, process in started.items():
            losses[run] = finish(process, runs[run])
    report = {"settings": SETTINGS, "tolerance": TOLERANCE, "setups": {}}
    for setup in SETUPS:
        worst = max_difference(losses[("torch", setup)], losses[("mlx", setup)])
        report["setups"][setup] = {
            "max_train_loss_difference_torch_vs_mlx": worst,
            "within_tolerance": worst <= TOLERANCE,
            "logged_steps": len(losses[("torch", setup)]),
            "final_train_loss": {
                b: losses[(b, setup)][SETTINGS["max_steps"]] for b in ("torch", "mlx")
            },
            "max_difference_from_single_process": {
                b: max_difference(losses[(b, setup)], losses[(b, "single")])
                for b in ("torch", "mlx")
            },
        }
        print(
            f"{setup}: max |torch - mlx| train loss {worst:.3g}, within {TOLERANCE}: "
            f"{worst <= TOLERANCE}"
        )
    report["machine"] = f"{platform.machine()}, {platform.system()}"
    report["command"] = " ".join(["benchmarks/same_seed_acceptance.py", "--data", str(args.data)])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
