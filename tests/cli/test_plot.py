"""myllm.plot: PNGs of training runs and bench results, and one-line errors for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from myllm.errors import UserError
from myllm.plot import plot_bench, plot_runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRAIN_STEPS = 6
EVAL_STEPS = (3, 6)


def write_run(directory: Path, backend: str | None, device: str = "cpu (2 threads)") -> Path:
    """A tiny run directory as `myllm train` writes it: a training line per step, two evals."""
    directory.mkdir(parents=True)
    lines = []
    for step in range(1, TRAIN_STEPS + 1):
        tokens_seen = step * 4 * 16
        lines.append(
            {
                "step": step,
                "epoch": 0,
                "train_loss": 4.2 - 0.3 * step,
                "lr": 3e-4 * step / TRAIN_STEPS,
                "tokens_per_second": 1000.0 + step,
                "elapsed_s": 0.1 * step,
                "tokens_seen": tokens_seen,
            }
        )
        if step in EVAL_STEPS:
            lines.append(
                {
                    "step": step,
                    "epoch": 0,
                    "val_loss": 4.3 - 0.3 * step,
                    "train_loss": 4.2 - 0.3 * step,
                    "tokens_seen": tokens_seen,
                }
            )
    write_lines(directory / "metrics.jsonl", [json.dumps(line) for line in lines])
    if backend is not None:
        run_info = {"backend": backend, "device": device, "command": "myllm train"}
        (directory / "run.json").write_text(json.dumps(run_info), encoding="utf-8")
    return directory


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk, which always follows the signature."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    return [
        write_run(tmp_path / "run_torch", "torch"),
        write_run(tmp_path / "run_mlx", "mlx", device="gpu"),
    ]


def test_loss_plot_shows_both_runs_against_step_and_tokens(
    two_runs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "plots" / "loss.png"  # parent does not exist yet
    summary = plot_runs(two_runs, out)
    assert out.stat().st_size > 0
    assert png_size(out) == summary.size_pixels
    assert summary.size_pixels == (1210, 495)  # 11 x 4.5 in at 110 dpi
    assert summary.labels == ["run_torch (torch, cpu (2 threads))", "run_mlx (mlx, gpu)"]
    assert summary.axis_labels == [
        ("step", "loss (nats/char)"),
        ("tokens seen", "loss (nats/char)"),
    ]
    assert summary.points == [{"train": TRAIN_STEPS, "val": len(EVAL_STEPS)}] * 2
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left no temporary file


@pytest.mark.parametrize(
    ("metric", "y_label"), [("lr", "learning rate"), ("tokens_per_second", "tokens/s")]
)
def test_per_step_metrics(two_runs: list[Path], tmp_path: Path, metric: str, y_label: str) -> None:
    out = tmp_path / f"{metric}.png"
    summary = plot_runs(two_runs, out, metric=metric)
    assert png_size(out) == summary.size_pixels
    assert summary.axis_labels == [("step", y_label)]
    assert summary.points == [{metric: TRAIN_STEPS}] * 2
    assert [label.split(" ")[0] for label in summary.labels] == ["run_torch", "run_mlx"]


def test_log_x(two_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "loss_log.png"
    summary = plot_runs(two_runs, out, log_x=True)
    assert png_size(out) == summary.size_pixels


def test_run_without_run_json_is_labelled_by_directory(tmp_path: Path) -> None:
    run = write_run(tmp_path / "old_run", backend=None)
    summary = plot_runs([run], tmp_path / "loss.png")
    assert summary.labels == ["old_run"]


def test_resumed_run_plots_each_step_once(tmp_path: Path) -> None:
    run = write_run(tmp_path / "resumed", "torch")
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as metrics:
        repeated = {"step": 5, "epoch": 0, "train_loss": 2.0, "lr": 1e-4, "tokens_seen": 320}
        metrics.write(json.dumps(repeated) + "\n")
    summary = plot_runs([run], tmp_path / "loss.png")
    assert summary.points == [{"train": TRAIN_STEPS, "val": len(EVAL_STEPS)}]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nowhere not found: pass a checkpoint directory"):
        plot_runs([tmp_path / "nowhere"], tmp_path / "loss.png")


def test_metrics_jsonl_that_is_a_directory_is_named_as_one(tmp_path: Path) -> None:
    (tmp_path / "run" / "metrics.jsonl").mkdir(parents=True)
    with pytest.raises(UserError, match=r"metrics\.jsonl is a directory, not a file"):
        plot_runs([tmp_path / "run"], tmp_path / "loss.png")


def test_unreadable_metrics_jsonl_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """As root ignores chmod, the refusal of open() is simulated where the check opens it."""
    run = write_run(tmp_path / "run", "torch")

    def refuse(path, flags, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("myllm.paths.os.open", refuse)
    with pytest.raises(UserError, match=r"metrics\.jsonl cannot be read \(Permission denied\)"):
        plot_runs([run], tmp_path / "loss.png")


def test_directory_without_metrics(tmp_path: Path) -> None:
    (tmp_path / "not_a_run").mkdir()
    expected = (
        "not_a_run has no metrics.jsonl: pass a checkpoint directory written by `myllm train`"
    )
    with pytest.raises(UserError, match=expected):
        plot_runs([tmp_path / "not_a_run"], tmp_path / "loss.png")


def test_empty_metrics(tmp_path: Path) -> None:
    run = tmp_path / "empty_run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"metrics.jsonl is empty"):
        plot_runs([run], tmp_path / "loss.png")


def test_malformed_line_is_named(tmp_path: Path) -> None:
    run = write_run(tmp_path / "broken", "torch")
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = '{"step": 3, "train_loss":'
    write_lines(run / "metrics.jsonl", lines)
    with pytest.raises(
        UserError, match=r"metrics.jsonl line 3 is not valid JSON .*: fix or delete"
    ):
        plot_runs([run], tmp_path / "loss.png")


def test_torn_last_line_from_a_crash_is_skipped(tmp_path: Path) -> None:
    run = write_run(tmp_path / "crashed", "torch")
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as metrics:
        metrics.write('{"step": 7, "epoch": 0, "train_lo')  # no newline: the write was cut short
    summary = plot_runs([run], tmp_path / "loss.png")
    assert summary.points == [{"train": TRAIN_STEPS, "val": len(EVAL_STEPS)}]


def test_metric_absent_from_run(tmp_path: Path) -> None:
    run = tmp_path / "eval_only"
    run.mkdir()
    evaluation = {"step": 1, "epoch": 0, "val_loss": 4.0, "train_loss": 4.1, "tokens_seen": 64}
    write_lines(run / "metrics.jsonl", [json.dumps(evaluation)])
    with pytest.raises(UserError, match=r"has no 'lr' values: choose another --metric"):
        plot_runs([run], tmp_path / "lr.png", metric="lr")


def test_unknown_metric(two_runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown metric 'accuracy': choose one of loss, lr"):
        plot_runs(two_runs, tmp_path / "x.png", metric="accuracy")


def test_out_must_be_png(two_runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not a .png path"):
        plot_runs(two_runs, tmp_path / "loss.svg")


def test_missing_matplotlib_names_the_extra(
    two_runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(
        UserError,
        match=r"matplotlib is not installed: in the myllm clone, pip install -e '\.\[plot\]'",
    ):
        plot_runs(two_runs, tmp_path / "loss.png")


BENCH = {
    "backends": {
        "torch": {
            "figures": {
                "train_tokens_per_s": 12000.0,
                "forward_tokens_per_s": 40000.0,
                "generate_kv_tokens_per_s": 900.0,
                "decode_step_ms": 6.0,
            },
        },
        "mlx": {
            "figures": {
                "train_tokens_per_s": 15000.0,
                "forward_tokens_per_s": 52000.0,
                "generate_kv_tokens_per_s": 1100.0,
            },
        },
    },
    "machine": {"cpu": "AMD EPYC"},
}


def test_plot_bench_draws_a_bar_per_backend_and_measurement(tmp_path: Path) -> None:
    out = tmp_path / "bench.png"
    summary = plot_bench(BENCH, out)
    assert png_size(out) == summary.size_pixels
    assert summary.labels == ["torch", "mlx"]
    assert summary.axis_labels == [("", "tokens/s (characters/s for batched)")]
    assert summary.points == [{"bars": 3}, {"bars": 3}]


def test_plot_bench_without_numbers(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no throughput numbers: pass a file written"):
        plot_bench({"backends": {"torch": {"error": "no GPU"}}}, tmp_path / "bench.png")
