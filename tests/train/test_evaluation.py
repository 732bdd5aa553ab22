"""`myllm eval`: the loss training logged, in nats and bits per character (or byte), each backend.

Tolerance: the same windows through the same trainer code give the same float32 loss; it is
compared with rel 1e-6 (float32 forward, accumulated in float32 on both backends).
"""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from myllm.cli import app
from myllm.config.settings import ModelSettings
from myllm.errors import UserError
from myllm.train.evaluation import bits_per_character, evaluate_checkpoint
from myllm.train.evaluation_plan import FULL_PASS_MAX_WINDOWS, SAMPLED_EVAL_BATCHES
from myllm.train.setup import run_training
from tests.helpers import TINY_MODEL, sample_text, tiny_train_config

RELATIVE = 1e-6


def train_tiny(backend_name, text_file, directory, eval_iters, max_steps=6, **overrides):
    config = tiny_train_config(
        text_file, directory, max_steps=max_steps, eval_interval=3, eval_iters=eval_iters,
        cache_dir=str(directory.parent / "cache"), **overrides,
    )  # fmt: skip
    run_training(backend_name, config, ModelSettings(**TINY_MODEL))
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if "val_loss" in record]


def test_eval_reproduces_the_logged_validation_loss(backend, text_file, tmp_path):
    evaluations = train_tiny(backend.name, text_file, tmp_path / "run", eval_iters=4)
    last = evaluations[-1]
    assert last["step"] == 6
    assert last["val_bpc"] == last["val_loss"] / math.log(2)
    checkpoint = tmp_path / "run" / f"checkpoint_last{backend.checkpoint_suffix}"

    result = evaluate_checkpoint(checkpoint, device="cpu")  # the run's own eval_iters: 4
    assert result.loss_nats == pytest.approx(last["val_loss"], rel=RELATIVE)
    assert result.bits_per_character == pytest.approx(last["val_loss"] / math.log(2), rel=RELATIVE)
    assert result.perplexity == pytest.approx(math.exp(last["val_loss"]), rel=RELATIVE)
    assert result.windows == 4 * 8 and result.backend == backend.name


def test_eval_of_a_byte_run_reads_its_byte_tokenizer(tmp_path):
    data = tmp_path / "bytes.txt"
    data.write_bytes(sample_text(3000).encode("utf-8") + bytes(range(128, 256)) * 4)
    evaluations = train_tiny("torch", data, tmp_path / "run", None, tokenizer="byte")
    checkpoint = tmp_path / "run" / "checkpoint_last.pt"
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(checkpoint), "--json", "-"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["unit"] == "byte" and payload["eval_iters"] is None
    assert payload["loss_nats"] == pytest.approx(evaluations[-1]["val_loss"], rel=RELATIVE)
    printed = CliRunner().invoke(app, ["eval", "--checkpoint", str(checkpoint)])
    assert printed.exit_code == 0 and "bits per byte" in printed.stdout, printed.output


def test_eval_past_the_sampled_threshold_reproduces_the_logged_sample(tmp_path):
    """A split of more than FULL_PASS_MAX_WINDOWS windows: training logged a seeded sample of
    SAMPLED_EVAL_BATCHES batches, and eval reads the same windows (val_split 0.5 keeps it small)."""
    data = tmp_path / "large.txt"
    data.write_text(sample_text(2 * FULL_PASS_MAX_WINDOWS + 400), encoding="utf-8")
    run = tmp_path / "run"
    evaluations = train_tiny("torch", data, run, None, max_steps=3, val_split=0.5)
    assert json.loads((run / "run.json").read_text())["evaluation"]["mode"] == "sampled"
    result = evaluate_checkpoint(run / "checkpoint_last.pt", device="cpu")
    assert result.eval_iters == SAMPLED_EVAL_BATCHES and result.windows == SAMPLED_EVAL_BATCHES * 8
    assert result.loss_nats == pytest.approx(evaluations[-1]["val_loss"], rel=RELATIVE)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One torch run on 800 characters, validated on every window (eval_iters None)."""
    directory = tmp_path_factory.mktemp("eval")
    data = directory / "small.txt"
    data.write_text(sample_text(800), encoding="utf-8")
    evaluations = train_tiny("torch", data, directory / "run", eval_iters=None)
    return data, directory / "run" / "checkpoint_last.pt", evaluations


def test_eval_covers_every_window_of_each_split(small_run):
    _, checkpoint, evaluations = small_run

    full = evaluate_checkpoint(checkpoint, split="val", device="cpu")
    assert full.loss_nats == pytest.approx(evaluations[-1]["val_loss"], rel=RELATIVE)
    assert full.windows == (800 - int(800 * 0.9)) - 16
    train = evaluate_checkpoint(checkpoint, split="train", device="cpu", backend_name="mlx")
    assert train.windows == int(800 * 0.9) - 16 and train.backend == "mlx"
    everything = evaluate_checkpoint(checkpoint, split="all", device="cpu")
    assert everything.windows == 800 - 16
    # The whole text is the two splits plus the windows across the boundary.
    weighted = (full.loss_nats * full.windows + train.loss_nats * train.windows) / (
        full.windows + train.windows
    )
    assert everything.loss_nats == pytest.approx(weighted, rel=0.05)


def test_more_batches_than_the_split_holds_is_one_full_pass(small_run):
    _, checkpoint, evaluations = small_run
    args = ["eval", "--checkpoint", str(checkpoint), "--eval-iters", "1000000", "--json", "-"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "more batches than the split holds" in result.stderr
    payload = json.loads(result.stdout)
    assert payload["eval_iters"] is None and payload["windows"] == 80 - 16
    assert payload["loss_nats"] == pytest.approx(evaluations[-1]["val_loss"], rel=RELATIVE)
    refused = CliRunner().invoke(app, [*args[:4], "1000000000000"])
    assert isinstance(refused.exception, UserError) and "--eval-iters" in str(refused.exception)


def test_eval_json_writes_the_file_it_is_given(small_run, tmp_path):
    _, checkpoint, _ = small_run
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app, ["eval", "--checkpoint", str(checkpoint), "--eval-iters", "2", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["bits_per_character"] == bits_per_character(payload["loss_nats"])
    assert np.isfinite(payload["perplexity"]) and payload["split"] == "val"
    assert result.stdout == ""


def test_eval_json_is_checked_before_any_work(tmp_path):
    """A directory as --json is refused before the checkpoint is even read."""
    missing = tmp_path / "missing.pt"
    args = ["eval", "--checkpoint", str(missing), "--json", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, UserError)
    assert f"--json {tmp_path} is a directory" in str(result.exception)
