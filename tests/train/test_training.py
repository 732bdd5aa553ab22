"""Training on each backend: the loss falls, checkpoints reload to identical logits."""

import json

import numpy as np

from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.config.settings import ModelSettings
from myllm.data.sampler import BatchSampler
from myllm.train.setup import run_training
from tests.helpers import (
    TINY_MODEL,
    logits_of,
    sample_text,
    text_corpus,
    tiny_model_config,
    tiny_train_config,
)


def read_metrics(directory):
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


def test_tiny_run_lowers_loss_and_writes_its_files(backend, text_file, tmp_path):
    config = tiny_train_config(text_file, tmp_path / "run", max_steps=60, eval_interval=30)
    result = run_training(backend.name, config, ModelSettings(**TINY_MODEL))
    assert result.step == 60 and result.exit_code == 0
    suffix = backend.checkpoint_suffix
    for name in ("best_model", "checkpoint_last"):
        assert (tmp_path / "run" / f"{name}{suffix}").is_file()
    assert (tmp_path / "run" / "tokenizer.json").is_file()
    run_info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_info["backend"] == backend.name
    records = read_metrics(tmp_path / "run")
    train_lines = [r for r in records if "val_loss" not in r]
    val_lines = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in val_lines] == [30, 60]
    assert set(train_lines[0]) >= {"step", "epoch", "train_loss", "lr", "tokens_per_second"}
    assert train_lines[-1]["train_loss"] < train_lines[0]["train_loss"] - 0.5
    assert val_lines[-1]["val_loss"] < np.log(65)  # better than uniform over the vocabulary
    last = read_checkpoint(tmp_path / "run" / f"checkpoint_last{suffix}")
    assert last.training.step == 60 and last.optimizer.step == 60


def test_epoch_mode_writes_epoch_checkpoints(backend, tmp_path):
    data = tmp_path / "small.txt"
    data.write_text(sample_text(600), encoding="utf-8")
    config = tiny_train_config(data, tmp_path / "run", epochs=2, batch_size=64, eval_iters=None)
    result = run_training(backend.name, config, ModelSettings(**TINY_MODEL))
    steps_per_epoch = -(-(540 - 16) // 64)
    assert result.step == 2 * steps_per_epoch
    for name in ("checkpoint_epoch_1", "checkpoint_epoch_2", "best_model", "checkpoint_last"):
        assert (tmp_path / "run" / f"{name}{backend.checkpoint_suffix}").is_file()
    val_steps = [r["step"] for r in read_metrics(tmp_path / "run") if "val_loss" in r]
    assert val_steps == [steps_per_epoch, 2 * steps_per_epoch]


def test_checkpoint_reloads_to_identical_logits(backend, text_file, tmp_path):
    """float32: the reloaded model's logits equal the trained model's exactly."""
    corpus = text_corpus(text_file.read_text())
    model_config = tiny_model_config(corpus.tokenizer.vocab_size)
    trainer = backend.Trainer(model_config, tiny_train_config(text_file, tmp_path))
    sampler = BatchSampler(corpus.train_tokens, 16, 4, seed=0)
    for step in range(3):
        trainer.train_step(*sampler.batch(step), 1e-3)
    path = tmp_path / f"c{backend.checkpoint_suffix}"
    write_checkpoint(path, trainer.checkpoint())
    reloaded = backend.load_decoder(read_checkpoint(path), "cpu").model
    ids = corpus.train_tokens[:32].reshape(2, 16)
    np.testing.assert_array_equal(
        logits_of(backend, trainer.model, ids), logits_of(backend, reloaded, ids)
    )
