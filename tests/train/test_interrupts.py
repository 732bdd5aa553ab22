"""SIGINT / SIGTERM / SIGHUP during training: the step finishes, the run saves, exits 130 / 143 /
129.

Interrupts are real signals: in-process runs signal themselves from inside a training step (the
real handler then sees them), CLI runs get SIGINT from the test like a user's Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from myllm.checkpoint.io import read_checkpoint
from myllm.train.setup import run_training
from tests.helpers import (
    DROPOUT_MODEL,
    ONE_THREAD_ENV,
    TINY_CLI,
    TOTAL_STEPS,
    resume_from,
    run_cli,
    sample_text,
    signal_at_step,
    temp_files,
    train_losses,
    two_epoch_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread is fastest


def test_a_second_signal_during_the_last_save_stops_at_once_and_keeps_the_old_checkpoint(
    backend, small_text, tmp_path, monkeypatch
):
    config = two_epoch_config(small_text, tmp_path)
    last = tmp_path / f"checkpoint_last{backend.checkpoint_suffix}"
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.Trainer, 3, signal.SIGINT)
        run_training(backend.name, config, DROPOUT_MODEL)
    before = last.read_bytes()

    import myllm.checkpoint.io

    original_write = myllm.checkpoint.io.atomic_write

    def write_then_interrupt(path, write):
        def interrupted_write(temp):
            write(temp)  # the new checkpoint is in the temporary file, not yet renamed
            os.kill(os.getpid(), signal.SIGINT)

        original_write(path, interrupted_write if path.name == last.name else write)

    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.Trainer, 2, signal.SIGINT)
        patch.setattr(myllm.checkpoint.io, "atomic_write", write_then_interrupt)
        with pytest.raises(SystemExit) as stopped:
            resume_from(backend, last)
    assert stopped.value.code == 130
    assert last.read_bytes() == before and temp_files(tmp_path) == []
    assert resume_from(backend, last).step == TOTAL_STEPS  # still resumable


def myllm_process(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "myllm", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD_ENV,
    )


def test_sigint_on_the_cli_exits_130_says_how_to_resume_and_the_resume_is_exact(backend, tmp_path):
    """A real Ctrl-C at whatever step the run has reached; the resumed run matches a whole one."""
    data = tmp_path / "input.txt"
    data.write_text(sample_text(), encoding="utf-8")
    args = ["train", "--backend", backend.name, "--data", data, "--max-steps", "150",
            "--eval-interval", "50", "--eval-iters", "2", "--log-interval", "1", "--lr", "3e-3",
            "--seed", "5", *TINY_CLI]  # fmt: skip
    whole = myllm_process(*args, "--checkpoint-dir", tmp_path / "whole")  # meanwhile, the reference
    run = tmp_path / "run"
    process = myllm_process(*args, "--checkpoint-dir", run)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run ended or stalled before step 5: {process.communicate()[1]}")
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = run / f"checkpoint_last{backend.checkpoint_suffix}"
    [message] = [line for line in stderr.splitlines() if "Resume with:" in line]
    assert f"--backend {backend.name} --resume {last}" in message
    step = read_checkpoint(last).training.step
    assert 5 <= step < 150 and train_losses(run)[-1][0] == step

    resumed = run_cli("train", "--backend", backend.name, "--resume", last)  # here, in-process
    assert resumed.returncode == 0, resumed.stderr
    assert read_checkpoint(last).training.step == 150
    _, stderr = whole.communicate(timeout=300)
    assert whole.returncode == 0, stderr
    assert len(train_losses(run)) == 150
    assert train_losses(run) == train_losses(tmp_path / "whole")


def test_sighup_on_the_cli_saves_says_how_to_resume_and_exits_129(tmp_path):
    """A closed terminal or a dropped ssh session (issue 23 #8): treated like SIGTERM."""
    data = tmp_path / "input.txt"
    data.write_text(sample_text(4000), encoding="utf-8")
    run = tmp_path / "run"
    process = myllm_process("train", "--backend", "torch", "--data", data, "--checkpoint-dir", run,
                            "--max-steps", "100000", "--log-interval", "1", *TINY_CLI)  # fmt: skip
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run ended or stalled before step 2: {process.communicate()[1]}")
        time.sleep(0.02)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 129, stderr
    assert "Traceback" not in stderr and "Resume with:" in stderr
    assert read_checkpoint(run / "checkpoint_last.pt").training.step >= 2
