"""The `myllm bench` report: figures from the timings, ratios, the table, notes and JSON."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from myllm.bench.flops import FLOP_FORMULA, flop_parameter_count, model_flops_per_token
from myllm.bench.machine import load_average, machine_info
from myllm.bench.plan import BATCHED_SAMPLES, PROMPT_IDS, BenchPlan

if TYPE_CHECKING:  # the runner imports this module to build its report
    from myllm.bench.runner import BackendBench


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


def figures_of(bench: BackendBench, plan: BenchPlan) -> dict[str, float]:
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
    plan: BenchPlan, benches: list[BackendBench], skipped: dict[str, str], load_at_start
) -> dict[str, Any]:
    backends = {
        bench.name: {
            **bench.description(),
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


# --- output ---


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _flops(value: float) -> str:
    return f"{value / 1e9:,.1f}"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _mebibytes(value: float) -> str:
    return f"{value / 2**20:,.0f}"


ROWS: list[tuple[str, str, Callable[[float], str]]] = [
    ("training tokens/s", "train_tokens_per_s", _rate),
    ("forward tokens/s", "forward_tokens_per_s", _rate),
    ("generate tokens/s, KV cache", "generate_kv_tokens_per_s", _rate),
    ("generate tokens/s, no cache", "generate_no_kv_tokens_per_s", _rate),
    (f"generate chars/s, {BATCHED_SAMPLES} samples", "generate_batched_chars_per_s", _rate),
    ("cached decode step, ms", "decode_step_ms", lambda v: f"{v:.2f}"),
    ("  of which model forward, ms", "model_step_ms", lambda v: f"{v:.2f}"),
    ("  decoder overhead", "decode_overhead_fraction", _percent),
    ("peak memory, MiB", "peak_memory_bytes", _mebibytes),
    ("process peak RSS, MiB", "peak_rss_bytes", _mebibytes),
    ("training GFLOP/s", "train_flops_per_s", _flops),
    ("forward GFLOP/s", "forward_flops_per_s", _flops),
    ("matmul peak GFLOP/s", "matmul_peak_flops_per_s", _flops),
    ("training MFU", "train_mfu", _percent),
    ("forward MFU", "forward_mfu", _percent),
]


def render_table(report: dict[str, Any]):
    """The figures as a rich Table: one column per backend, then mlx/torch when both ran."""
    from rich.table import Table

    table = Table(title=f"myllm bench --config {report['settings']['config']}")
    table.add_column("figure")
    names = list(report["backends"])
    for name in names:
        table.add_column(name, justify="right")
    ratios = report["ratios_mlx_over_torch"]
    if ratios:
        table.add_column("mlx/torch", justify="right")
    for label, key, formatted in ROWS:
        cells = [formatted(report["backends"][name]["figures"][key]) for name in names]
        if ratios:
            cells.append("" if ratios[key] is None else f"{ratios[key]:.2f}x")
        table.add_row(label, *cells)
    return table


def report_notes(report: dict[str, Any]) -> list[str]:
    """The lines printed under the table: devices, paths, memory sources, FLOP formula."""
    settings = report["settings"]
    model = settings["model_config"]
    notes = [
        f"model: d_model {model['d_model']}, {model['n_layers']} layers, {model['n_heads']} heads, "
        f"block {settings['block_size']}, batch {settings['batch_size']}, dtype "
        f"{settings['dtype']}, compile {settings['compile']}, "
        f"dropout {model['dropout']}; training steps per repeat: {settings['steps']}; medians of "
        f"{settings['repeats']} interleaved repeats after warm-up ({settings['warmup']} steps)"
    ]
    machine = report["machine"]
    start, end = machine["load_average_at_start"][0], machine["load_average_at_end"][0]
    # Our own run adds about one per busy thread by the end: only the start is a clean signal,
    # but an end far above what this process can account for means others joined.
    if start >= 0.5 * (machine["cpu_count"] or 1) or end > (machine["cpu_count"] or 1) + 0.5:
        notes.append(
            f"warning: the machine was busy (1-minute load {start:.1f} at the start, {end:.1f} "
            f"at the end, on {machine['cpu_count']} CPUs): other work makes these figures noisy"
        )
    if any(info["figures"]["train_mfu"] > 1 for info in report["backends"].values()):
        notes.append(
            "warning: an MFU above 100% means the matmul peak was measured low (other work "
            "during its samples) or the model's matmuls run faster than the square one"
        )
    for name, info in report["backends"].items():
        gpu = f", GPU {info['gpu']}" if info["gpu"] else ""
        notes.append(
            f"{name}: {info['device']}{gpu}; BLAS {info['blas']}; {info['precision']}; "
            f"peak memory = {info['memory_source']}"
        )
    for kind, path in report["generation_paths"].items():
        notes.append(f"{kind}: {path}")
    notes.append(f"FLOPs: {report['flops']['formula']}")
    notes.append(f"matmul peak: {report['flops']['matmul_peak']}")
    for name, reason in report["skipped"].items():
        notes.append(f"skipped {name}: {reason}")
    return notes


def write_report(path: Path, report: dict[str, Any]) -> None:
    import json

    from myllm.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def markdown_table(report: dict[str, Any]) -> str:
    """The table as Markdown, for benchmarks/README.md."""
    names = list(report["backends"])
    ratios = report["ratios_mlx_over_torch"]
    header = ["figure", *names] + (["mlx/torch"] if ratios else [])
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for label, key, formatted in ROWS:
        cells = [formatted(report["backends"][name]["figures"][key]) for name in names]
        if ratios:
            cells.append("" if ratios[key] is None else f"{ratios[key]:.2f}x")
        lines.append("| " + " | ".join([label.strip(), *cells]) + " |")
    return "\n".join(lines)
