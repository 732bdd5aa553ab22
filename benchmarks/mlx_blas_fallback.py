"""MLX training tokens/s of the default GPT under each BLAS of the fallback chain (Linux CPU).

Each measurement is a child process with MYLLM_BLAS forcing one library: the torch wheel's
libtorch_cpu.so (the fallback for machines without the system OpenBLAS), `none` (the reference
BLAS the mlx[cpu] wheel ships: what such machines got before), and the system OpenBLAS when it
exists. Children alternate round by round so a noisy machine slows them alike; the median over
rounds is reported. A step is the MLX trainer's own (forward, backward, clip, AdamW), on the
bench's default model (d_model 384, 6 layers, block 128) and batch 16; --batch-size 4 keeps the
reference BLAS's steps short on a busy machine.

    .venv/bin/python benchmarks/mlx_blas_fallback.py [--rounds 2] [--steps 2] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK_SIZE = 128

CHILD = """
import json, sys, time
import numpy as np
import myllm_mlx, myllm_mlx.blas as blas
from myllm.config.settings import ModelConfig, TrainConfig
from myllm_mlx.trainer import Trainer

steps, batch, block = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
trainer = Trainer(ModelConfig(vocab_size=65), TrainConfig(batch_size=batch, block_size=block,
                  device="cpu"))
rng = np.random.default_rng(0)
x, y = (rng.integers(0, 65, size=(batch, block)).astype(np.int32) for _ in range(2))
trainer.to_host(list(trainer.train_step(x, y, 3e-4)))  # warm-up
start = time.perf_counter()
for _ in range(steps):
    trainer.to_host(list(trainer.train_step(x, y, 3e-4)))
seconds = time.perf_counter() - start
rate = steps * batch * block / seconds
print(json.dumps({"blas": blas.blas_in_use(), "tokens_per_second": rate}))
"""


def measure(library: str, steps: int, batch_size: int) -> dict:
    env = {**os.environ, "MYLLM_BLAS": library, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", CHILD, str(steps), str(batch_size), str(BLOCK_SIZE)]
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from myllm_mlx.blas import SEARCH_PATHS, torch_blas_path

    libraries = {"torch-blas": torch_blas_path(), "reference": "none"}
    system = next((path for path in SEARCH_PATHS if os.path.exists(path)), None)
    if system is not None:
        libraries["system-openblas"] = system
    runs: dict[str, list[dict]] = {name: [] for name in libraries}
    for round_index in range(args.rounds):
        for name, library in libraries.items():
            runs[name].append(measure(library, args.steps, args.batch_size))
            print(f"round {round_index}: {name} {runs[name][-1]['tokens_per_second']:.0f} tok/s")
    report = {
        "what": "MLX training tokens/s, default model, by BLAS (median over rounds)",
        "model": {"d_model": 384, "n_layers": 6, "n_heads": 6, "block_size": BLOCK_SIZE},
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "dtype": "float32",
        "threads": {name: os.environ.get(name) for name in ("OMP_NUM_THREADS",)},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv),
        "median_tokens_per_second": {
            name: statistics.median(r["tokens_per_second"] for r in results)
            for name, results in runs.items()
        },
        "runs": runs,
    }
    medians = report["median_tokens_per_second"]
    report["torch_blas_over_reference"] = medians["torch-blas"] / medians["reference"]
    print(json.dumps(report["median_tokens_per_second"]))
    print(f"torch-blas / reference: {report['torch_blas_over_reference']:.1f}x")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
