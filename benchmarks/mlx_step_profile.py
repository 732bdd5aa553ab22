"""Time one training step of the default GPT in MLX (eager and compiled) and in torch.

A step is forward + backward + gradient-norm clip 1.0 + AdamW (DESIGN §3), on the same batch in
every backend. Backends alternate round by round, after warm-up, so a noisy machine slows them
alike; the reported figure is the median over rounds. MLX is also timed in a child process with
MYLLM_BLAS=none (the reference BLAS that the mlx[cpu] wheel ships), which shows what loading
OpenBLAS buys. Results are printed and written as JSON.

    .venv/bin/python benchmarks/mlx_step_profile.py [--rounds 3] [--steps 3] [--skip-blas-none]

mx.compile's first call builds C++ kernels (~40 s with a cold cache in $TMPDIR/mlx).
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
from functools import partial
from pathlib import Path

import numpy as np

# torch before myllm_mlx: myllm_mlx loads OpenBLAS with RTLD_GLOBAL, and a torch imported after
# that routes its own sgemm calls to OpenBLAS instead of its MKL (40% slower steps here).
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import myllm_mlx  # noqa: F401  (loads the system BLAS before anything imports mlx.core)
from myllm.config import ModelConfig
from myllm_mlx.blas import blas_in_use

RESULTS = Path(__file__).resolve().parent / "results" / "mlx_step_profile.json"
LEARNING_RATE, BETAS, EPS, WEIGHT_DECAY, GRAD_CLIP = 3e-4, (0.9, 0.95), 1e-8, 0.1, 1.0


def make_batch(config: ModelConfig, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random token windows [B, T] (inputs) and their shifted targets, as int32."""
    rng = np.random.default_rng(seed)
    window = rng.integers(0, config.vocab_size, (batch_size, config.max_seq_len + 1))
    return window[:, :-1].astype(np.int32), window[:, 1:].astype(np.int32)


def mlx_step(config: ModelConfig, batch, compiled: bool, seed: int):
    """A closure running one MLX training step to completion (mx.eval) on `batch`."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from myllm_mlx.device import resolve_device
    from myllm_mlx.model import GPTModel, loss_fn

    resolve_device("auto")  # as the trainer does: GPU if any; on CPU, MLX's buffer cache
    mx.random.seed(seed)
    model = GPTModel(config)
    model.train()
    optimizer = optim.AdamW(
        learning_rate=LEARNING_RATE,
        betas=list(BETAS),
        eps=EPS,
        weight_decay=WEIGHT_DECAY,
        bias_correction=True,
    )
    optimizer.init(model.trainable_parameters())
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        grads, _ = optim.clip_grad_norm(grads, GRAD_CLIP)
        optimizer.update(model, grads)
        return loss

    state = [model.state, optimizer.state, mx.random.state]
    if compiled:
        step = partial(mx.compile, inputs=state, outputs=state)(step)
    x, y = (mx.array(part) for part in batch)

    def run() -> float:
        loss = step(x, y)
        mx.eval(state, loss)
        return loss.item()

    return run


def torch_step(config: ModelConfig, batch, seed: int):
    """A closure running one torch training step on `batch` (CPU, synchronous)."""
    from myllm_torch.model import GPTModel, loss_fn

    torch.manual_seed(seed)
    model = GPTModel(config)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY
    )
    x, y = (torch.from_numpy(part).long() for part in batch)

    def run() -> float:
        loss = loss_fn(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        return loss.item()

    return run


def time_steps(run, steps: int) -> list[float]:
    """Seconds of each of `steps` consecutive steps."""
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds


def benchmark(runs: dict, args, tokens_per_step: int) -> dict:
    """Warm every backend up, then time them in alternating rounds; tokens/s per backend."""
    for name, run in runs.items():
        start = time.perf_counter()
        time_steps(run, args.warmup)
        print(f"warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
    seconds = {name: [] for name in runs}
    for round_index in range(args.rounds):
        order = list(runs) if round_index % 2 == 0 else list(reversed(runs))
        for name in order:
            seconds[name] += time_steps(runs[name], args.steps)
    return {
        name: {
            "tokens_per_second": tokens_per_step / statistics.median(times),
            "step_seconds_median": statistics.median(times),
            "step_seconds": [round(t, 4) for t in times],
        }
        for name, times in seconds.items()
    }


def blas_none_run(args) -> dict | None:
    """The compiled MLX step in a child process with MYLLM_BLAS=none (reference BLAS)."""
    command = [
        sys.executable,
        __file__,
        "--child-blas-none",
        "--batch-size",
        str(args.batch_size),
        "--warmup",
        "1",
        "--steps",
        str(args.blas_none_steps),
    ]
    env = dict(os.environ, MYLLM_BLAS="none")
    print("timing MLX with MYLLM_BLAS=none in a child process (slow) ...", flush=True)
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        print(completed.stderr, file=sys.stderr)
        return None
    return json.loads(completed.stdout.strip().splitlines()[-1])


def child_blas_none(args, config: ModelConfig, tokens_per_step: int) -> None:
    run = mlx_step(config, make_batch(config, args.batch_size, args.seed), True, args.seed)
    time_steps(run, args.warmup)
    times = time_steps(run, args.steps)
    result = {
        "blas": blas_in_use(),
        "tokens_per_second": tokens_per_step / statistics.median(times),
        "step_seconds": [round(t, 3) for t in times],
    }
    print(json.dumps(result))


def versions() -> dict[str, str]:
    import mlx.core as mx

    return {
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per backend")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per backend per round")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--skip-blas-none", action="store_true", help="skip MYLLM_BLAS=none")
    parser.add_argument("--blas-none-steps", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--child-blas-none", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = ModelConfig(vocab_size=65)  # the default model: d_model 384, 6 layers, 6 heads
    tokens_per_step = args.batch_size * config.max_seq_len
    if args.child_blas_none:
        child_blas_none(args, config, tokens_per_step)
        return
    load_before = os.getloadavg()
    batch = make_batch(config, args.batch_size, args.seed)
    runs = {
        "mlx_eager": mlx_step(config, batch, False, args.seed),
        "mlx_compiled": mlx_step(config, batch, True, args.seed),
        "torch": torch_step(config, batch, args.seed),
    }
    results = benchmark(runs, args, tokens_per_step)
    blas_none = None if args.skip_blas_none else blas_none_run(args)
    torch_tps = results["torch"]["tokens_per_second"]
    ratios = {
        f"{name}_vs_torch": results[name]["tokens_per_second"] / torch_tps
        for name in ("mlx_eager", "mlx_compiled")
    }
    if blas_none is not None:
        results["mlx_compiled_blas_none"] = blas_none
        ratios["mlx_compiled_vs_blas_none"] = (
            results["mlx_compiled"]["tokens_per_second"] / blas_none["tokens_per_second"]
        )
    report = {
        "benchmark": "mlx_step_profile",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": versions(),
        "device": {"cpu": cpu_name(), "cores": os.cpu_count(), "system": platform.system()},
        # Other processes on the machine: the 1-minute load average before and after timing.
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "blas": blas_in_use(),
        "dtype": "float32",
        "model": config.to_dict(),
        "batch_size": args.batch_size,
        "tokens_per_step": tokens_per_step,
        "step": "forward + backward + clip_grad_norm 1.0 + AdamW(3e-4, (0.9, 0.95), 1e-8, 0.1)",
        "results": results,
        "ratios": ratios,
        "goals": {"mlx_vs_torch": 0.6, "mlx_vs_blas_none": 15.0},
    }
    print(f"\n{'backend':<24}{'tokens/s':>10}{'s/step':>9}")
    for name, result in results.items():
        seconds = result.get("step_seconds_median", statistics.median(result["step_seconds"]))
        print(f"{name:<24}{result['tokens_per_second']:>10.0f}{seconds:>9.2f}")
    for name, ratio in ratios.items():
        print(f"{name:<32}{ratio:>6.2f}x")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
