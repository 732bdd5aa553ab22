"""Exact resume: an interrupted and resumed run equals the uninterrupted one, bit for bit."""

from __future__ import annotations

import signal

import pytest

from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.config.settings import TrainConfig
from myllm.train.interrupts import EXIT_CODES
from myllm.train.resume import read_resume
from myllm.train.setup import run_training
from tests.helpers import (
    DROPOUT_MODEL,
    STEPS_PER_EPOCH,
    TOTAL_STEPS,
    assert_checkpoints_identical,
    constant_checkpoint,
    metric_records,
    resume_from,
    signal_at_step,
    train_losses,
    two_epoch_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread is fastest


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """backend -> (result, run directory) of the whole two-epoch run, trained once per backend
    for the module and only read by the tests (each interruption is compared with it)."""
    runs = {}

    def run(backend, small_text):
        if backend.name not in runs:
            directory = tmp_path_factory.mktemp(f"whole-{backend.name}")
            config = two_epoch_config(small_text, directory)
            runs[backend.name] = run_training(backend.name, config, DROPOUT_MODEL), directory
        return runs[backend.name]

    return run


@pytest.mark.parametrize(
    ("stop_at", "signum"),
    [(1, signal.SIGHUP), (13, signal.SIGTERM), (STEPS_PER_EPOCH, signal.SIGINT)],
    ids=["first-step-sighup", "mid-epoch-sigterm", "epoch-end"],
)
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(
    backend, small_text, tmp_path, monkeypatch, stop_at, signum, uninterrupted
):
    """Dropout 0.1, float32 on CPU: every step's loss and the final state are bit-identical."""
    whole, whole_dir = uninterrupted(backend, small_text)
    assert whole.step == TOTAL_STEPS and whole.exit_code == 0
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.Trainer, stop_at, signum)
        first = run_training(
            backend.name, two_epoch_config(small_text, tmp_path / "b"), DROPOUT_MODEL
        )
    assert (first.step, first.interrupted_by, first.exit_code) == (
        stop_at,
        signum,
        EXIT_CODES[signum],
    )
    last = tmp_path / "b" / f"checkpoint_last{backend.checkpoint_suffix}"
    assert read_checkpoint(last).training.step == stop_at
    resumed = resume_from(backend, last)
    assert resumed.step == TOTAL_STEPS and resumed.exit_code == 0
    assert len(train_losses(whole_dir)) == TOTAL_STEPS
    assert train_losses(tmp_path / "b") == train_losses(whole_dir)
    assert metric_records(tmp_path / "b") == metric_records(whole_dir)  # val losses too
    assert resumed.best_val_loss == whole.best_val_loss
    for name in (
        "checkpoint_last",
        "best_model",
        f"checkpoint_epoch_{TOTAL_STEPS // STEPS_PER_EPOCH}",
    ):
        assert_checkpoints_identical(
            read_checkpoint(whole_dir / f"{name}{backend.checkpoint_suffix}"),
            read_checkpoint(tmp_path / "b" / f"{name}{backend.checkpoint_suffix}"),
        )


def test_resume_settings_are_the_stored_ones_under_the_flags_given(tmp_path):
    """The one merge rule of --resume: stored config, given flags over it, and by default the
    run goes on writing beside the checkpoint."""
    path = tmp_path / "run" / "checkpoint_last.safetensors"
    path.parent.mkdir()
    checkpoint = constant_checkpoint(3)
    checkpoint.train_config = TrainConfig(lr=1e-3, batch_size=8, checkpoint_dir="old").to_dict()
    write_checkpoint(path, checkpoint)
    resume, config = read_resume(path, {"batch_size": 4})
    assert resume.path == path and resume.checkpoint.training.step == 3
    assert (config.lr, config.batch_size, config.checkpoint_dir) == (1e-3, 4, str(path.parent))
    _, config = read_resume(path, {"checkpoint_dir": str(tmp_path / "new")})
    assert config.checkpoint_dir == str(tmp_path / "new")
