"""Reproduction for an MLX issue: CPU element-wise ops, reductions and random bits use one core.

Standalone (needs only mlx; torch, if installed, is timed alongside for reference). For each op,
on a float32 array of 16 M elements: wall time, process CPU time, and their ratio (1.0 = one
core busy; N = N cores busy). Run it on a machine with several cores:

    python benchmarks/upstream/mlx_cpu_elementwise.py [--elements 16777216] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def measure(function, repeats: int) -> tuple[float, float]:
    """Median wall ms and median CPU ms (all threads of the process) of `function()`."""
    function()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


def mlx_ops(n: int) -> dict:
    import mlx.core as mx

    mx.set_default_device(mx.cpu)
    x = mx.random.normal((n,))
    y = mx.random.normal((n,))
    mx.eval(x, y)
    rows = mx.reshape(x, (-1, 128))
    chain = mx.compile(lambda a, b: (a * b + 1.0) * a - b)

    def run(f):
        return lambda: mx.eval(f())

    return {
        "add": run(lambda: x + y),
        "exp": run(lambda: mx.exp(x)),
        "erf": run(lambda: mx.erf(x)),
        "compiled a*b+1 chain": run(lambda: chain(x, y)),
        "softmax, rows of 128": run(lambda: mx.softmax(rows, axis=-1)),
        "sum, rows of 128": run(lambda: mx.sum(rows, axis=-1)),
        "random.bernoulli": run(lambda: mx.random.bernoulli(0.9, (n,))),
        "matmul 2048^3 (BLAS, reference)": run(
            lambda: (
                mx.reshape(x[: 2048 * 2048], (2048, 2048))
                @ mx.reshape(y[: 2048 * 2048], (2048, 2048))
            )
        ),
    }


def torch_ops(n: int) -> dict:
    try:
        import torch
    except ImportError:
        return {}
    x, y = torch.randn(n), torch.randn(n)
    rows = x.view(-1, 128)
    return {
        "add": lambda: x + y,
        "exp": lambda: torch.exp(x),
        "erf": lambda: torch.erf(x),
        "compiled a*b+1 chain": lambda: (x * y + 1.0) * x - y,
        "softmax, rows of 128": lambda: torch.softmax(rows, -1),
        "sum, rows of 128": lambda: rows.sum(-1),
        "random.bernoulli": lambda: torch.empty(n).bernoulli_(0.9),
        "matmul 2048^3 (BLAS, reference)": lambda: (
            x[: 2048 * 2048].view(2048, 2048) @ y[: 2048 * 2048].view(2048, 2048)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=1 << 24)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import mlx.core as mx

    print(f"mlx {mx.__version__}, {os.cpu_count()} CPUs, {args.elements} float32 elements")
    mlx_side, torch_side = mlx_ops(args.elements), torch_ops(args.elements)
    header = f"{'op':<34}{'mlx ms':>9}{'cpu/wall':>9}"
    print(header + (f"{'torch ms':>10}{'cpu/wall':>9}" if torch_side else ""))
    for name, function in mlx_side.items():
        wall, cpu = measure(function, args.repeats)
        line = f"{name:<34}{wall:>9.1f}{cpu / wall:>9.2f}"
        if name in torch_side:
            t_wall, t_cpu = measure(torch_side[name], args.repeats)
            line += f"{t_wall:>10.1f}{t_cpu / t_wall:>9.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
