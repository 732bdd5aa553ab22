"""`myllm compare` through the real CLI: both backends from one seed, side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import assert_user_error, sample_text


def myllm(*args: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "myllm", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_compare_trains_both_backends_and_writes_json_and_png(tmp_path: Path):
    (tmp_path / "input.txt").write_text(sample_text(5000), encoding="utf-8")
    result = myllm("compare", "--data", tmp_path / "input.txt", "--out", tmp_path / "cmp",
                   "--max-steps", "10", "--log-interval", "5", "--eval-interval", "10",
                   "--eval-iters", "1", "--d-model", "32", "--block-size", "16",
                   "--device", "cpu", "--json", "-")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [pair["step"] for pair in report["train"]] == [5, 10]
    assert report["settings"]["dropout"] == 0.1 and report["settings"]["dtype"] == "float32"
    assert report["max_train_loss_difference"] <= 1e-4  # float32, same weights and masks
    assert set(report["final_val_loss"]) == {"torch", "mlx"}
    assert "max |train loss difference|" in result.stderr
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "cmp" / "torch" / "metrics.jsonl").is_file()


def test_a_plot_path_that_is_no_png_is_refused_before_training(tmp_path: Path):
    result = myllm("compare", "--out", tmp_path / "cmp", "--plot", tmp_path / "curves.txt")
    assert_user_error(result, "is not a .png path")
    assert not (tmp_path / "cmp" / "torch").exists()
