"""`myllm eval`: the loss training logged, in nats and bits per character, on each backend.

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
from myllm.data.char_tokenizer import CharTokenizer
from myllm.data.sampler import prepare_corpus
from myllm.train.evaluation import bits_per_character, evaluate_checkpoint
from myllm.train.setup import run_training
from tests.helpers import TINY_MODEL, sample_text, tiny_train_config

RELATIVE = 1e-6


def train_tiny(backend_name, text_file, directory, eval_iters):
    config = tiny_train_config(
        text_file, directory, max_steps=6, eval_interval=3, eval_iters=eval_iters
    )
    run_training(backend_name, config, ModelSettings(**TINY_MODEL))
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if "val_loss" in record]


def test_eval_reproduces_the_logged_validation_loss(backend, text_file, tmp_path):
    evaluations = train_tiny(backend.name, text_file, tmp_path / "run", eval_iters=4)
    last = evaluations[-1]
    assert last["step"] == 6
    assert last["val_bpc"] == last["val_loss"] / math.log(2)
    checkpoint = tmp_path / "run" / f"checkpoint_last{backend.checkpoint_suffix}"

    result = evaluate_checkpoint(checkpoint, eval_iters=4, device="cpu")
    assert result.loss_nats == pytest.approx(last["val_loss"], rel=RELATIVE)
    assert result.bits_per_character == pytest.approx(last["val_loss"] / math.log(2), rel=RELATIVE)
    assert result.perplexity == pytest.approx(math.exp(last["val_loss"]), rel=RELATIVE)
    assert result.windows == 4 * 8 and result.backend == backend.name


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One torch run on 800 characters, validated on every window (eval_iters None)."""
    directory = tmp_path_factory.mktemp("eval")
    data = directory / "small.txt"
    data.write_text(sample_text(800), encoding="utf-8")
    evaluations = train_tiny("torch", data, directory / "run", eval_iters=None)
    return data, directory / "run" / "checkpoint_last.pt", evaluations


def test_eval_covers_every_window_of_each_split(small_run):
    data, checkpoint, evaluations = small_run

    full = evaluate_checkpoint(checkpoint, split="val", device="cpu")
    assert full.loss_nats == pytest.approx(evaluations[-1]["val_loss"], rel=RELATIVE)
    corpus = prepare_corpus(
        data.read_text(), 16, 0.1, CharTokenizer.load(checkpoint.parent / "tokenizer.json")
    )
    assert full.windows == len(corpus.val_tokens) - 16
    train = evaluate_checkpoint(checkpoint, split="train", device="cpu", backend_name="mlx")
    assert train.windows == len(corpus.train_tokens) - 16 and train.backend == "mlx"
    everything = evaluate_checkpoint(checkpoint, split="all", device="cpu")
    assert everything.windows == 800 - 16
    # The whole text is the two splits plus the windows across the boundary.
    weighted = (full.loss_nats * full.windows + train.loss_nats * train.windows) / (
        full.windows + train.windows
    )
    assert everything.loss_nats == pytest.approx(weighted, rel=0.05)


def test_eval_command_prints_json(small_run):
    _, checkpoint, _ = small_run
    result = CliRunner().invoke(
        app, ["eval", "--checkpoint", str(checkpoint), "--eval-iters", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["bits_per_character"] == bits_per_character(payload["loss_nats"])
    assert np.isfinite(payload["perplexity"]) and payload["split"] == "val"
