"""The `myllm bench` report: each backend's result, the figures from its timings, the ratios.

The report is the JSON that `--json` writes (its keys are documented in benchmarks/README.md);
myllm/bench/output.py prints it.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from myllm.bench.flops import FLOP_FORMULA, flop_parameter_count, model_flops_per_token
from myllm.bench.machine import load_average, machine_info
from myllm.bench.plan import BATCHED_SAMPLES, PROMPT_IDS, BenchPlan


@dataclass
class BackendResult:
    """What one backend's worker measured: sent to the parent as JSON, turned into the report."""

    name: str
    description: dict[str, Any]  # device, versions, BLAS, dtype and its reason, memory sources
    samples: dict[str, list[float]]  # measurement -> seconds of each timed repeat
    sweep_seconds: dict[str, list[float]]  # "m x k x n" -> seconds per matmul, each sample
    peak_memory: int
    peak_rss: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def generation_paths(plan: BenchPlan) -> dict[str, str]:
    """Which decoding path each generation figure took (KV cache to block_size, then recompute)."""
    cached = max(0, min(plan.gen_tokens, plan.block_size - len(PROMPT_IDS) + 1))
    if cached == plan.gen_tokens:
        kv_path = f"KV cache: {cached} one-token steps"
    else:
        kv_path = (
            f"KV cache for the first {cached} tokens, then recompute on the last "
            f"{plan.block_size} tokens for {plan.gen_tokens - cached} (past block_size)"
        )
    return {
        "generate_kv": kv_path,
        "generate_no_kv": "no cache: the whole context (up to block_size) recomputed per token",
        "generate_batched": f"{BATCHED_SAMPLES} samples in one batch; {kv_path}",
    }


def matmul_peak(size: int, square_seconds: float, sweep_seconds: dict[str, list[float]]) -> float:
    """The best FLOP/s of the sweep's medians: the square and every other m x k x n shape."""
    rates = [2 * size**3 / square_seconds]
    for name, seconds in sweep_seconds.items():
        m, k, n = (int(part) for part in name.split("x"))
        rates.append(2 * m * k * n / statistics.median(seconds))
    return max(rates)


def figures_of(bench: BackendResult, plan: BenchPlan) -> dict[str, float]:
    """Medians of the repeats turned into the reported figures."""
    median = {kind: statistics.median(values) for kind, values in bench.samples.items()}
    train_tokens = plan.steps * plan.batch_size * plan.block_size
    peak = matmul_peak(plan.matmul_size, median["matmul"], bench.sweep_seconds)
    train_rate = train_tokens / median["train"]
    forward_rate = train_tokens / median["forward"]
    config = plan.model_config
    train_flops = train_rate * model_flops_per_token(config, training=True)
    forward_flops = forward_rate * model_flops_per_token(config, training=False)
    return {
        "train_tokens_per_s": train_rate,
        "forward_tokens_per_s": forward_rate,
        "generate_kv_tokens_per_s": plan.gen_tokens / median["generate_kv"],
        "generate_no_kv_tokens_per_s": plan.gen_tokens / median["generate_no_kv"],
        "generate_batched_chars_per_s": BATCHED_SAMPLES
        * plan.gen_tokens
        / median["generate_batched"],
        "decode_step_ms": 1e3 * median["decode_step"],
        "model_step_ms": 1e3 * median["model_step"],
        "decode_overhead_fraction": 1.0 - median["model_step"] / median["decode_step"],
        "peak_memory_bytes": float(bench.peak_memory),
        "peak_rss_bytes": float(bench.peak_rss),
        "train_flops_per_s": train_flops,
        "forward_flops_per_s": forward_flops,
        "matmul_peak_flops_per_s": peak,
        "train_mfu": train_flops / peak,
        "forward_mfu": forward_flops / peak,
    }


NO_RATIO = {"decode_overhead_fraction"}  # a ratio of two small, noisy fractions means nothing


def mlx_over_torch(backends: dict[str, Any]) -> dict[str, float | None]:
    """mlx / torch for each figure; None where the two are not the same kind of measurement."""
    if not {"mlx", "torch"} <= set(backends):
        return {}
    mlx, torch = backends["mlx"], backends["torch"]
    same_memory = mlx["memory_source"] == torch["memory_source"]
    ratios: dict[str, float | None] = {}
    for key, torch_value in torch["figures"].items():
        comparable = key not in NO_RATIO and (same_memory or key != "peak_memory_bytes")
        ratios[key] = mlx["figures"][key] / torch_value if comparable and torch_value else None
    return ratios


def build_report(
    plan: BenchPlan, benches: list[BackendResult], skipped: dict[str, str], load_at_start
) -> dict[str, Any]:
    backends = {
        bench.name: {
            **bench.description,
            "figures": figures_of(bench, plan),
            "seconds": bench.samples,
        }
        for bench in benches
    }
    config, size = plan.model_config, plan.matmul_size
    return {
        "command": list(sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            **machine_info(),
            "load_average_at_start": list(load_at_start),
            "load_average_at_end": list(load_average()),
        },
        "settings": plan.to_dict(),
        "flops": {
            "formula": FLOP_FORMULA,
            "N": flop_parameter_count(config),
            "training_per_token": model_flops_per_token(config, training=True),
            "forward_per_token": model_flops_per_token(config, training=False),
            "matmul_peak": f"best over a sweep ({size}^3, smaller squares, the model's GEMM "
            "shapes m x k x n) of the median 2*m*k*n / seconds, each backend's own matmul in its "
            "dtype",
        },
        "generation_paths": generation_paths(plan),
        "backends": backends,
        "ratios_mlx_over_torch": mlx_over_torch(backends),
        "skipped": skipped,
    }
