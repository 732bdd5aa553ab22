"""`myllm train`'s settings through the CLI's entry point (in-process, and once in a subprocess):
the derived flags reach the run, and a resume compares model flags with the checkpoint and
refuses a --max-steps already reached without touching the run (issue 23 #9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli, sample_text

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
TINY = ["--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "16",
        "--batch-size", "8", "--device", "cpu", "--eval-iters", "2"]  # fmt: skip


def myllm(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "myllm", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 4-step torch run, trained once for the module (in-process)."""
    directory = tmp_path_factory.mktemp("settings")
    data = directory / "small.txt"
    data.write_text(sample_text(4_000))
    result = run_cli("train", "--data", data, "--checkpoint-dir", directory / "base", *TINY,
                     "--max-steps", 4, "--eval-interval", 2)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return directory / "base"


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in directory.iterdir()}


def test_hostile_value_is_one_line_exit_2_in_a_real_process(tmp_path):
    result = myllm("train", "--data", tmp_path / "none.txt", "--max-steps", 2**64)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert "\n" not in message and "--max-steps" in message and "1e9" in message


def test_resume_accepts_the_checkpoints_own_model_values(run):
    result = run_cli("train", "--resume", run / "checkpoint_last.pt", "--d-model", 32,
                     "--n-heads", 4, "--max-steps", 6, "--eval-interval", 2)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_resume_refuses_another_model_value_in_one_line(run):
    before = snapshot(run)
    result = run_cli("train", "--resume", run / "checkpoint_last.pt", "--d-model", 64)
    message = result.stderr.strip()
    assert result.returncode == 2 and "\n" not in message, message
    assert "--d-model 64 differs from the checkpoint's 32" in message
    assert snapshot(run) == before


def test_resume_below_the_checkpoints_step_leaves_the_run_untouched(run):
    before = snapshot(run)
    result = run_cli("train", "--resume", run / "checkpoint_last.pt", "--max-steps", 2)
    message = result.stderr.strip()
    assert result.returncode == 2 and "\n" not in message, message
    assert "nothing to train" in message and "--max-steps" in message
    assert "loss nan" not in result.stdout + result.stderr and result.stdout == ""
    assert snapshot(run) == before


def test_resume_print_config_shows_the_checkpoints_model(run):
    result = run_cli("train", "--resume", run / "checkpoint_last.pt", "--print-config")
    assert result.returncode == 0, result.stderr
    assert "d_model = 32" in result.stdout and "n_heads = 4" in result.stdout
