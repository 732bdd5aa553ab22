"""The NaN / inf guard: a diverging run stops in one line and keeps the last good checkpoint."""

from __future__ import annotations

import itertools
import math
import signal

import pytest

from myllm.errors import UserError
from myllm.train.divergence import divergence, loss_ceiling
from myllm.train.setup import run_training
from tests.helpers import (
    DROPOUT_MODEL,
    all_weights_finite,
    resume_from,
    run_cli,
    signal_at_step,
    two_epoch_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread is fastest


def poison_step(monkeypatch, trainer_class, call: int, how: str) -> None:
    """At the `call`-th train_step: return a NaN loss, or step with lr = NaN (NaN weights after)."""
    original = trainer_class.train_step
    calls = itertools.count(1)

    def train_step(self, x, y, lr, **kwargs):
        if next(calls) != call:
            return original(self, x, y, lr, **kwargs)
        if how == "nan-lr":
            return original(self, x, y, float("nan"), **kwargs)
        loss, grad_norm = original(self, x, y, lr, **kwargs)
        return loss * float("nan"), grad_norm

    monkeypatch.setattr(trainer_class, "train_step", train_step)


@pytest.mark.parametrize(
    ("how", "call", "eval_interval", "stopped_at", "reason"),
    [
        ("nan-loss", 4, None, 9, "loss nan"),
        ("nan-lr", 4, None, 10, "loss nan"),  # step 9's loss is finite, step 10's is not
        ("nan-lr", 15, None, 20, "validation loss nan"),  # epoch end: evaluated before saving
        ("nan-lr", 15, 100, 20, "non-finite weights when saving checkpoint_epoch_1"),
    ],
    ids=["nan-loss", "nan-weights", "nan-before-evaluation", "nan-before-epoch-save"],
)
def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(
    backend, small_text, tmp_path, monkeypatch, how, call, eval_interval, stopped_at, reason
):
    config = two_epoch_config(small_text, tmp_path, eval_interval=eval_interval)
    suffix = backend.checkpoint_suffix
    last = tmp_path / f"checkpoint_last{suffix}"
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.Trainer, 5, signal.SIGINT)
        run_training(backend.name, config, DROPOUT_MODEL)
    before = last.read_bytes()
    poison_step(monkeypatch, backend.Trainer, call, how)
    with pytest.raises(UserError) as diverged:
        resume_from(backend, last)
    message = str(diverged.value)
    assert diverged.value.exit_code == 1
    assert f"diverged at step {stopped_at} ({reason}" in message, message
    assert f"the last good checkpoint is {last}" in message and "--lr 0.003" in message
    assert "\n" not in message
    assert last.read_bytes() == before
    assert all_weights_finite(tmp_path, suffix)
    assert not (tmp_path / f"checkpoint_epoch_1{suffix}").exists()


def test_divergence_on_the_cli_is_one_line_exit_1(backend, small_text, tmp_path, monkeypatch):
    """An absurd --lr on resume: exit 1, one error line, no traceback, checkpoint_last untouched."""
    last = tmp_path / f"checkpoint_last{backend.checkpoint_suffix}"
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.Trainer, 5, signal.SIGINT)
        run_training(backend.name, two_epoch_config(small_text, tmp_path), DROPOUT_MODEL)
    before = last.read_bytes()
    result = run_cli("train", "--backend", backend.name, "--resume", last, "--lr", "1e6")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    [error] = [line for line in result.stderr.splitlines() if "error" in line]
    assert error.startswith("error: training diverged at step ")
    assert f"the last good checkpoint is {last}" in error and "--lr 1000000.0" in error
    assert last.read_bytes() == before


def test_an_exploding_but_finite_loss_stops_the_run_as_diverged(backend, small_text, tmp_path):
    """--weight-decay 1e6 (issue 23 #10): every value stays finite while the loss explodes past
    10 x ln(vocab_size); the run stops at that step, exit 1, before anything ruined is saved."""
    config = two_epoch_config(small_text, tmp_path, weight_decay=1e6)
    with pytest.raises(UserError) as diverged:
        run_training(backend.name, config, DROPOUT_MODEL)
    message = str(diverged.value)
    assert diverged.value.exit_code == 1 and "\n" not in message
    assert "training diverged at step " in message and "x ln(vocab_size)" in message, message
    assert "--weight-decay 1000000.0" in message and "no checkpoint written" in message
    assert not list(tmp_path.glob(f"*{backend.checkpoint_suffix}"))


def test_the_loss_ceiling_is_ten_uniform_guesses():
    ceiling = loss_ceiling(65)
    assert ceiling == pytest.approx(10 * math.log(65))  # float64, exact to rounding
    assert divergence(4.2, 1.0, ceiling) is None
    assert "above 41.7" in divergence(1.4e9, 1.0, ceiling)
    assert "nan" in divergence(float("nan"), 1.0, ceiling)
    assert "inf" in divergence(1.0, float("inf"), ceiling)
    assert loss_ceiling(1) == loss_ceiling(2)  # a one-symbol text: still a positive ceiling


def test_a_warm_up_longer_than_an_epoch_based_run_is_refused(small_text, tmp_path):
    """--epochs 2 is 40 steps on this text, known only with the data (issue 23 #11)."""
    config = two_epoch_config(small_text, tmp_path / "run", warmup_steps=41)
    with pytest.raises(UserError, match="warmup_steps 41 is longer than the run, 40 steps") as e:
        run_training("torch", config, DROPOUT_MODEL)
    assert e.value.exit_code == 2 and "lower --warmup-steps to at most 40" in str(e.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written
