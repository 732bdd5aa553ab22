"""`myllm bench`'s report printed: the table (rich or Markdown), the notes under it, the JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from myllm.bench.plan import BATCHED_SAMPLES


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
