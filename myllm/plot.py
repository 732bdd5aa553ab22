"""Plot training runs (loss, learning rate, throughput) and bench results as PNG files.

matplotlib is an optional extra (`pip install -e '.[plot]'` in the clone), so it is imported only
inside the functions that draw.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myllm.atomic import atomic_path
from myllm.errors import UserError

METRICS = ("loss", "lr", "tokens_per_second")
FIGURE_SIZE_INCHES = (11.0, 4.5)
BENCH_FIGURE_SIZE_INCHES = (7.5, 4.5)
DPI = 110
BENCH_SUFFIXES = ("_tokens_per_s", "_chars_per_s")  # the bench figures drawn: throughputs

_RUN_HINT = "pass a checkpoint directory written by `myllm train`"
_BENCH_HINT = "pass a file written by `myllm bench --json`"
_Y_LABELS = {"loss": "loss (nats/char)", "lr": "learning rate", "tokens_per_second": "tokens/s"}
_TITLES = {
    "loss": "training loss (line) and validation loss (markers)",
    "lr": "learning rate schedule",
    "tokens_per_second": "training throughput",
}


@dataclass(frozen=True)
class PlotSummary:
    """What a saved plot shows, read back from the figure, so tests can check it without eyes."""

    out: Path
    labels: list[str]  # legend texts, in order: one per run (per backend for bench)
    axis_labels: list[tuple[str, str]]  # (x label, y label) per panel, left to right
    points: list[dict[str, int]]  # per run: series name ("train", "val", "lr", "bars") -> count
    size_pixels: tuple[int, int]  # (width, height) of the PNG


@dataclass(frozen=True)
class _Run:
    """One run directory: its legend label and its metrics records with their line numbers."""

    label: str
    metrics_path: Path
    records: list[tuple[int, dict[str, Any]]]


def plot_runs(
    run_dirs: list[Path], out: Path, metric: str = "loss", log_x: bool = False
) -> PlotSummary:
    """Plot `metric` of each run directory against step (and, for loss, tokens seen) into `out`."""
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    if not run_dirs:
        raise UserError("no run directory given: " + _RUN_HINT)
    _check_png_path(out)
    labels = _run_labels(run_dirs)
    runs = [_read_run(directory, label) for directory, label in zip(run_dirs, labels, strict=True)]
    figure = new_figure(FIGURE_SIZE_INCHES)
    if metric == "loss":
        panels, points = _draw_loss(figure, runs)
        figure.suptitle(_TITLES[metric])
    else:
        panels, points = _draw_per_step(figure, runs, metric)
        panels[0].set_title(_TITLES[metric])
    for axes in panels:
        axes.grid(alpha=0.3)
        if log_x:
            axes.set_xscale("log")
    return _finish(figure, panels, panels[0].legend(fontsize=8, loc="upper right"), points, out)


def plot_bench(bench: dict[str, Any], out: Path) -> PlotSummary:
    """Draw bench results as grouped bars: one group per measurement, one bar per backend."""
    _check_png_path(out)
    results = _bench_results(bench)
    groups = list(dict.fromkeys(key for numbers in results.values() for key in numbers))
    figure = new_figure(BENCH_FIGURE_SIZE_INCHES)
    axes = figure.subplots()
    bar_width = 0.8 / len(results)
    points = []
    for index, (backend, numbers) in enumerate(results.items()):
        offset = (index - (len(results) - 1) / 2) * bar_width
        positions = [groups.index(key) + offset for key in numbers]
        heights = list(numbers.values())
        bars = axes.bar(positions, heights, bar_width, label=backend, color=f"C{index % 10}")
        axes.bar_label(bars, labels=[f"{height:,.0f}" for height in heights], fontsize=8, padding=2)
        points.append({"bars": len(bars.patches)})
    axes.set_xticks(range(len(groups)), [_bench_label(key) for key in groups])
    axes.set_ylabel("tokens/s (characters/s for batched)")
    axes.set_yscale("log")  # training and generation rates differ by 10-100x
    axes.margins(y=0.12)  # headroom for the value labels above the tallest bar
    axes.grid(axis="y", alpha=0.3)
    cpu = bench.get("machine", {}).get("cpu")
    axes.set_title("throughput by backend" + (f" on {cpu}" if isinstance(cpu, str) else ""))
    return _finish(figure, [axes], axes.legend(fontsize=8), points, out)


def read_bench(path: Path) -> dict[str, Any]:
    """Load a bench JSON file, naming the file in the error if it is not one."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: {_BENCH_HINT}")
    try:
        bench = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}): {_BENCH_HINT}") from None
    if not isinstance(bench, dict):
        raise UserError(f"{path} is not a bench result object: {_BENCH_HINT}")
    return bench


# Reading runs


def _run_labels(run_dirs: list[Path]) -> list[str]:
    """Directory names, or the paths as given when two runs share a name (a/ckpt, b/ckpt)."""
    names = [directory.resolve().name for directory in run_dirs]
    if len(set(names)) < len(names):
        names = [str(directory) for directory in run_dirs]
    return names


def _read_run(directory: Path, name: str) -> _Run:
    if not directory.exists():
        raise UserError(f"{directory} does not exist: {_RUN_HINT}")
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory: {_RUN_HINT}")
    metrics_path = directory / "metrics.jsonl"
    if not metrics_path.is_file():
        raise UserError(f"{directory} has no metrics.jsonl: {_RUN_HINT}")
    info = _run_info(directory / "run.json")
    label = f"{name} ({info})" if info else name
    return _Run(label, metrics_path, _read_metrics(metrics_path))


def _run_info(path: Path) -> str:
    """'<backend>, <device>' from run.json; '' for old runs written before run.json existed."""
    if not path.is_file():
        return ""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(
            f"{path} is not valid JSON ({error}): fix it, or delete it to label the run by its "
            "directory name"
        ) from None
    if not isinstance(info, dict):
        return ""
    text = ", ".join(str(info[key]) for key in ("backend", "device") if info.get(key))
    return re.sub(r" \(/[^()]*\)", "", text)  # library paths make the legend wider than the plot


def _read_metrics(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line of metrics.jsonl; a malformed line names its number."""
    records = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                if not line.endswith("\n"):
                    continue  # a crash cut the last write short (see MetricsLog): skip that line
                raise UserError(
                    f"{path} line {number} is not valid JSON ({error.msg}): fix or delete that line"
                ) from None
            if not isinstance(record, dict) or not _is_number(record.get("step")):
                raise UserError(
                    f'{path} line {number} is not a metrics record with a "step": '
                    "fix or delete that line"
                )
            records.append((number, record))
    if not records:
        raise UserError(f"{path} is empty: train until the first log line is written, then plot")
    return records


def _points(run: _Run, key: str, evaluation: bool) -> list[tuple[int, dict[str, Any]]]:
    """The run's training (or evaluation) records that carry `key`, one per step, by step."""
    by_step = {}
    for number, record in run.records:
        if ("val_loss" in record) == evaluation and key in record:
            # A resumed run repeats the steps after its last checkpoint: the later line wins.
            by_step[record["step"]] = (number, record)
    return [by_step[step] for step in sorted(by_step)]


def _column(run: _Run, points: list[tuple[int, dict[str, Any]]], key: str) -> list[float]:
    """The values of `key` in `points`; a missing or non-numeric value names its line."""
    for number, record in points:
        if not _is_number(record.get(key)):
            raise UserError(
                f"{run.metrics_path} line {number}: {key!r} is {record.get(key)!r}, not a number: "
                "fix or delete that line"
            )
    return [record[key] for _, record in points]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Drawing


def new_figure(size_inches: tuple[float, float]) -> Any:
    """A matplotlib Figure on the Agg canvas: no window, no pyplot global state to leak."""
    try:
        import matplotlib
    except ImportError:
        raise UserError(
            "matplotlib is not installed: in the myllm clone, pip install -e '.[plot]'"
        ) from None
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=size_inches, dpi=DPI)


def _draw_loss(figure: Any, runs: list[_Run]) -> tuple[list[Any], list[dict[str, int]]]:
    """Train and validation loss against step (left) and tokens seen (right)."""
    from matplotlib.lines import Line2D

    panels = list(figure.subplots(1, 2))
    points = []
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        train = _points(run, "train_loss", evaluation=False)
        val = _points(run, "val_loss", evaluation=True)
        if not train and not val:
            raise UserError(
                f"{run.metrics_path} has no loss lines: train until the first log line is "
                "written, then plot"
            )
        for axes, x_key in zip(panels, ("step", "tokens_seen"), strict=True):
            (train_line,) = axes.plot(
                _column(run, train, x_key),
                _column(run, train, "train_loss"),
                color=colour,
                linewidth=0.8,
                alpha=0.8,
                label=run.label,
            )
            (val_line,) = axes.plot(
                _column(run, val, x_key),
                _column(run, val, "val_loss"),
                color=colour,
                linewidth=1.5,
                marker="o",
                markersize=3.5,
                label="_nolegend_",
            )
        points.append({"train": len(train_line.get_xdata()), "val": len(val_line.get_xdata())})
    for axes, x_label in zip(panels, ("step", "tokens seen"), strict=True):
        axes.set_xlabel(x_label)
        axes.set_ylabel(_Y_LABELS["loss"])
    style_key = [
        Line2D([], [], color="grey", linewidth=0.8, label="train"),
        Line2D([], [], color="grey", linewidth=1.5, marker="o", markersize=3.5, label="validation"),
    ]
    panels[1].legend(handles=style_key, fontsize=8)
    return panels, points


def _draw_per_step(
    figure: Any, runs: list[_Run], metric: str
) -> tuple[list[Any], list[dict[str, int]]]:
    """One training-line metric (lr, tokens_per_second) against step."""
    axes = figure.subplots()
    points = []
    for index, run in enumerate(runs):
        train = _points(run, metric, evaluation=False)
        if not train:
            raise UserError(
                f"{run.metrics_path} has no {metric!r} values: choose another --metric "
                f"({', '.join(METRICS)})"
            )
        (line,) = axes.plot(
            _column(run, train, "step"),
            _column(run, train, metric),
            color=f"C{index % 10}",
            linewidth=1.0,
            label=run.label,
        )
        points.append({metric: len(line.get_xdata())})
    axes.set_xlabel("step")
    axes.set_ylabel(_Y_LABELS[metric])
    return [axes], points


def _bench_label(key: str) -> str:
    """'generate_kv_tokens_per_s' -> 'generate kv' (the y axis says tokens/s)."""
    for suffix in BENCH_SUFFIXES:
        key = key.removesuffix(suffix)
    return key.replace("_", " ")


def _bench_results(bench: dict[str, Any]) -> dict[str, dict[str, float]]:
    """backend -> {"<what>_per_s": value} from a `myllm bench` report, backends with a number."""
    backends = bench.get("backends") if isinstance(bench, dict) else None
    if not isinstance(backends, dict):
        raise UserError(f'bench results have no "backends" object: {_BENCH_HINT}')
    numbers = {
        str(backend): {
            key: value
            for key, value in measured.get("figures", {}).items()
            if key.endswith(BENCH_SUFFIXES) and _is_number(value)
        }
        for backend, measured in backends.items()
        if isinstance(measured, dict)
    }
    numbers = {backend: values for backend, values in numbers.items() if values}
    if not numbers:
        raise UserError(f"bench results have no throughput numbers: {_BENCH_HINT}")
    return numbers


# Saving


def _check_png_path(out: Path) -> None:
    if out.suffix.lower() != ".png":
        raise UserError(f"{out} is not a .png path: choose an --out ending in .png")
    if out.is_dir():
        raise UserError(f"{out} is a directory: choose an --out file ending in .png")


def _finish(
    figure: Any, panels: list[Any], legend: Any, points: list[dict[str, int]], out: Path
) -> PlotSummary:
    """Lay out the figure, read back what it shows, and write it to `out` as a PNG."""
    figure.tight_layout()
    width_inches, height_inches = figure.get_size_inches()
    summary = PlotSummary(
        out=out,
        labels=[text.get_text() for text in legend.get_texts()],
        axis_labels=[(axes.get_xlabel(), axes.get_ylabel()) for axes in panels],
        points=points,
        size_pixels=(round(width_inches * figure.dpi), round(height_inches * figure.dpi)),
    )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create {out.parent} ({error.strerror}): choose another --out"
        ) from None
    with atomic_path(out) as temp:
        figure.savefig(temp, format="png", dpi=figure.dpi)
    return summary
