"""The benchmark behind `myllm bench`: plan, FLOP count, machine, runner and report.

The package holds no framework code: each backend's timing operations are its `BenchOps`.
"""

from myllm.bench.flops import FLOP_FORMULA, flop_parameter_count, model_flops_per_token
from myllm.bench.output import ROWS, markdown_table, render_table, report_notes
from myllm.bench.plan import PRESETS, BenchPlan, BenchSettings, resolve_plan
from myllm.bench.report import matmul_peak
from myllm.bench.runner import run_bench, run_matrix, select_backends

__all__ = [
    "FLOP_FORMULA",
    "PRESETS",
    "ROWS",
    "BenchPlan",
    "BenchSettings",
    "flop_parameter_count",
    "markdown_table",
    "matmul_peak",
    "model_flops_per_token",
    "render_table",
    "report_notes",
    "resolve_plan",
    "run_bench",
    "run_matrix",
    "select_backends",
]
