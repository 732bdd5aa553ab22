"""Plot training runs (loss, learning rate, throughput) and bench results as PNG files.

matplotlib is an optional extra (`pip install -e '.[plot]'` in the clone), so it is imported only
inside the functions that draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myllm.atomic import atomic_path
from myllm.errors import UserError
from myllm.run.history import RUN_HINT, RunHistory, is_number, read_run, run_labels

METRICS = ("loss", "lr", "tokens_per_second")
FIGURE_SIZE_INCHES = (11.0, 4.5)
BENCH_FIGURE_SIZE_INCHES = (7.5, 4.5)
DPI = 110
BENCH_SUFFIXES = ("_tokens_per_s", "_chars_per_s")  # the bench figures drawn: throughputs

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


def plot_runs(
    run_dirs: list[Path], out: Path, metric: str = "loss", log_x: bool = False
) -> PlotSummary:
    """Plot `metric` of each run directory against step (and, for loss, tokens seen) into `out`."""
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    if not run_dirs:
        raise UserError("no run directory given: " + RUN_HINT)
    _check_png_path(out)
    labels = run_labels(run_dirs)
    runs = [read_run(directory, label) for directory, label in zip(run_dirs, labels, strict=True)]
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


def _draw_loss(figure: Any, runs: list[RunHistory]) -> tuple[list[Any], list[dict[str, int]]]:
    """Train and validation loss against step (left) and tokens seen (right)."""
    from matplotlib.lines import Line2D

    panels = list(figure.subplots(1, 2))
    points = []
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        train = run.points("train_loss", evaluation=False)
        val = run.points("val_loss", evaluation=True)
        if not train and not val:
            raise UserError(
                f"{run.metrics_path} has no loss lines: train until the first log line is "
                "written, then plot"
            )
        for axes, x_key in zip(panels, ("step", "tokens_seen"), strict=True):
            (train_line,) = axes.plot(
                run.column(train, x_key),
                run.column(train, "train_loss"),
                color=colour,
                linewidth=0.8,
                alpha=0.8,
                label=run.label,
            )
            (val_line,) = axes.plot(
                run.column(val, x_key),
                run.column(val, "val_loss"),
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
    figure: Any, runs: list[RunHistory], metric: str
) -> tuple[list[Any], list[dict[str, int]]]:
    """One training-line metric (lr, tokens_per_second) against step."""
    axes = figure.subplots()
    points = []
    for index, run in enumerate(runs):
        train = run.points(metric, evaluation=False)
        if not train:
            raise UserError(
                f"{run.metrics_path} has no {metric!r} values: choose another --metric "
                f"({', '.join(METRICS)})"
            )
        (line,) = axes.plot(
            run.column(train, "step"),
            run.column(train, metric),
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
            if key.endswith(BENCH_SUFFIXES) and is_number(value)
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
