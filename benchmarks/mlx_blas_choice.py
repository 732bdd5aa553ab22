"""Which BLAS should MLX use on this Linux CPU? Each candidate timed in `myllm bench`'s workers.

One MLX bench worker per candidate (the system OpenBLAS with the kernels it picks itself, with
OPENBLAS_CORETYPE forced to the generic Prescott kernels it falls back to on CPUs it does not
know, with SkylakeX / Haswell kernels, and the BLAS inside the torch wheel), plus one torch worker
for the ratio; the parent interleaves them measurement by measurement, repeat by repeat, exactly
as `myllm bench` does (training, forward and the cached decode step only), and writes medians to
JSON. myllm_mlx/blas.py's choice follows from it.

    .venv/bin/python benchmarks/mlx_blas_choice.py [--config default] [--repeats 3] \
        [--json benchmarks/results/mlx_blas_choice-HOST-DATE.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

from myllm.bench.machine import load_average, machine_info
from myllm.bench.measure import MEASUREMENTS
from myllm.bench.plan import BenchSettings, resolve_plan
from myllm.bench.report import BackendResult, matmul_peak
from myllm.bench.runner import Worker
from myllm_mlx.blas import SEARCH_PATHS, torch_blas_path

# The measurements that tell BLAS libraries apart: big GEMMs (training, forward), batch-1 GEMMs
# (a cached decode step); generation is the decode step plus sampling.
MEASURED = ("training", "forward", "decode-step overhead")


def figures(result: BackendResult, plan) -> dict[str, float]:
    """Medians of the measured repeats as rates (a subset of the bench's figures)."""
    median = {kind: statistics.median(values) for kind, values in result.samples.items()}
    tokens = plan.steps * plan.batch_size * plan.block_size
    peak = matmul_peak(plan.matmul_size, median["matmul"], result.sweep_seconds)
    return {
        "train_tokens_per_s": tokens / median["train"],
        "forward_tokens_per_s": tokens / median["forward"],
        "decode_step_ms": 1e3 * median["decode_step"],
        "matmul_peak_flops_per_s": peak,
    }


def candidates() -> dict[str, tuple[str, dict[str, str]]]:
    """label -> (backend, environment) of every worker."""
    openblas = next((path for path in SEARCH_PATHS if Path(path).exists()), None)
    chosen = {"torch (reference)": ("torch", {}), "mlx, myllm's choice": ("mlx", {})}
    if openblas:
        for kernels in ("Prescott", "SkylakeX", "Haswell"):
            env = {"MYLLM_BLAS": openblas, "OPENBLAS_CORETYPE": kernels}
            chosen[f"mlx, system OpenBLAS, {kernels} kernels"] = ("mlx", env)
    torch_blas = torch_blas_path()
    if torch_blas:
        chosen["mlx, torch wheel's BLAS"] = ("mlx", {"MYLLM_BLAS": torch_blas})
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gen-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = BenchSettings(config=args.config, repeats=args.repeats, gen_tokens=args.gen_tokens,
                             device="cpu", dtype="float32", compile="auto")  # fmt: skip
    plan = resolve_plan(settings)
    load_at_start = load_average()
    workers = {}
    for label, (backend, env) in candidates().items():
        print(f"warming up {label}", file=sys.stderr)
        workers[label] = Worker(backend, settings, env)
        workers[label].ask("start", backend=backend, settings=dataclasses.asdict(settings))
    try:
        for index, (name, _) in enumerate(MEASUREMENTS):
            if name not in MEASURED:
                continue
            for repeat in range(plan.repeats):
                for label, worker in workers.items():
                    print(f"{name}: {label} {repeat + 1}/{plan.repeats}", file=sys.stderr)
                    worker.ask("measure", index=index, repeat=repeat)
                for worker in workers.values():
                    worker.ask("matmul")
        results = {label: BackendResult(**w.ask("result")) for label, w in workers.items()}
    finally:
        for worker in workers.values():
            worker.close()
    torch_figures = figures(results["torch (reference)"], plan)
    rows = {}
    for label, result in results.items():
        rates = figures(result, plan)
        rows[label] = {
            "blas": result.description["blas"],
            **rates,
            "train_over_torch": rates["train_tokens_per_s"] / torch_figures["train_tokens_per_s"],
            "seconds": result.samples,
        }
        peak = rates["matmul_peak_flops_per_s"] / 1e9
        print(f"{label:42s} train {rates['train_tokens_per_s']:8,.0f} tok/s "
              f"({rows[label]['train_over_torch']:.2f}x torch), forward "
              f"{rates['forward_tokens_per_s']:8,.0f}, decode {rates['decode_step_ms']:.2f} ms, "
              f"peak {peak:6.1f} GFLOP/s")  # fmt: skip
    report = {
        "command": sys.argv, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "load_average_at_start": list(load_at_start),
                    "load_average_at_end": list(load_average())},
        "settings": plan.to_dict(), "medians_of": plan.repeats, "candidates": rows,
    }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"Wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
