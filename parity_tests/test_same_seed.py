"""Torch vs MLX from one seed, dropout on: no converted weights, the runs' own initial weights
and masks (myllm/train/init.py, myllm/train/dropout.py). float32 throughout.

Tolerances: initial weights bit-identical; 20 AdamW steps at dropout 0.1, per-step train losses
max |diff| <= 1e-4, also with 2 micro-batches per step, and the accumulated run within 1e-5 of
the unaccumulated one on each backend (the masks are the same; only the summation differs).
"""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest

from myllm.backend.registry import load_backend
from myllm.config.settings import ModelConfig, TrainConfig
from myllm.data.sampler import BatchSampler
from myllm.train.schedule import CosineSchedule
from tests.helpers import sample_text, sample_tokens

BACKENDS = {name: load_backend(name) for name in ("torch", "mlx")}
CONFIG = ModelConfig(vocab_size=65, d_model=64, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.1)
STEPS = 20


@functools.cache
def seeded_losses(backend_name: str, grad_accum_steps: int = 1) -> list[float]:
    train = TrainConfig(
        batch_size=8, block_size=32, lr=1e-3, seed=5, device="cpu", dtype="float32",
        grad_accum_steps=grad_accum_steps,
    )  # fmt: skip
    trainer = BACKENDS[backend_name].Trainer(CONFIG, train)
    sampler = BatchSampler(sample_tokens(CONFIG.vocab_size), 32, 8, seed=train.seed)
    schedule = CosineSchedule(train.lr, STEPS, 0, 0.1)
    results = [
        trainer.train_step(*sampler.batch(s), schedule.lr_at(s), batch_rows=8, step=s)
        for s in range(STEPS)
    ]
    return trainer.to_host([loss for loss, _ in results])


def test_initial_weights_are_bit_identical():
    train = TrainConfig(seed=5, device="cpu")
    torch_weights, mlx_weights = (
        BACKENDS[name].Trainer(CONFIG, train).checkpoint().weights for name in BACKENDS
    )
    for name, values in torch_weights.items():
        np.testing.assert_array_equal(values, mlx_weights[name], strict=True)  # float32


@pytest.mark.parametrize("grad_accum_steps", [1, 2])
def test_seeded_runs_with_dropout_agree_step_by_step(grad_accum_steps, parity_report):
    torch_losses = seeded_losses("torch", grad_accum_steps)
    mlx_losses = seeded_losses("mlx", grad_accum_steps)
    worst = float(np.abs(np.array(torch_losses) - np.array(mlx_losses)).max())
    parity_report[f"same-seed dropout 0.1, accum {grad_accum_steps}: loss max |diff|"] = worst
    assert worst <= 1e-4  # float32
    assert torch_losses[-1] < torch_losses[0] - 0.3  # it trained


def test_accumulation_draws_the_unaccumulated_masks():
    for name in BACKENDS:
        whole, accumulated = seeded_losses(name, 1), seeded_losses(name, 2)
        assert np.abs(np.array(whole) - np.array(accumulated)).max() <= 1e-5  # float32


def myllm(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "myllm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sampling_prints_the_same_text_from_a_torch_and_an_mlx_checkpoint(tmp_path):
    """The sampler is shared (numpy, seeded); float32 logits within 1e-4 choose the same tokens."""
    (tmp_path / "input.txt").write_text(sample_text(5000), encoding="utf-8")
    trained = myllm("train", "--backend", "torch", "--data", tmp_path / "input.txt",
                    "--checkpoint-dir", tmp_path / "run", "--max-steps", "30", "--eval-iters", "1",
                    "--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "16",
                    "--batch-size", "8", "--lr", "3e-3", "--device", "cpu")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    torch_checkpoint = tmp_path / "run" / "checkpoint_last.pt"
    mlx_checkpoint = tmp_path / "mlx" / "model.safetensors"  # a run's own names are refused
    converted = myllm("convert", torch_checkpoint, mlx_checkpoint)
    assert converted.returncode == 0, converted.stderr
    sampling = ["--max-new-tokens", "80", "--seed", "3", "--temperature", "0.8", "--top-k", "20",
                "--top-p", "0.9", "--prompt", "ROMEO:", "--device", "cpu"]  # fmt: skip
    texts = [myllm("generate", "--checkpoint", path, *sampling) for path in (torch_checkpoint,
             mlx_checkpoint)]  # fmt: skip
    assert all(text.returncode == 0 for text in texts), [text.stderr for text in texts]
    assert texts[0].stdout == texts[1].stdout and len(texts[0].stdout) > 80
