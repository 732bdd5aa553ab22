"""Torch vs MLX on the same weights, float32, dropout 0 (docs/architecture.md: what parity means).

Tolerances (all float32): logits max |diff| <= 1e-4; gradients relative (Frobenius) <= 1e-4 per
parameter; 50 AdamW steps: per-step losses within 1e-3 and final weights max |diff| <= 1e-3;
greedy generation of 200 characters identical; cross-backend resume within 1e-3 of an
uninterrupted run on one backend. Logits, gradients and greedy text are checked with both MLP
activations (--activation gelu, gelu_tanh).

On CPU by default; MYLLM_TEST_DEVICE=gpu runs them on the GPU (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import dataclasses
import os

import mlx.core as mx
import mlx.nn as mnn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from myllm.backend.registry import load_backend
from myllm.config.settings import ModelConfig, TrainConfig
from myllm.data.sampler import BatchSampler
from myllm.generate.loop import generate_tokens
from myllm.generate.sampling import SamplingSettings
from myllm.train.schedule import CosineSchedule
from myllm_mlx.model import loss_fn as mlx_loss_fn
from myllm_torch.model import loss_fn as torch_loss_fn
from tests.helpers import logits_of, sample_tokens

TORCH, MLX = load_backend("torch"), load_backend("mlx")
CONFIG = ModelConfig(vocab_size=65, d_model=64, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.0)
ACTIVATIONS = pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
DEVICE = os.environ.get("MYLLM_TEST_DEVICE", "cpu")
TRAIN = TrainConfig(  # float32: the reference (auto is bfloat16 for torch on AMX/AVX512-BF16 CPUs)
    batch_size=8, block_size=32, lr=1e-3, seed=11, device=DEVICE, dtype="float32"
)


@pytest.fixture(scope="module")
def tokens() -> np.ndarray:
    return sample_tokens(CONFIG.vocab_size)


def make_trainers(source=TORCH, activation: str = "gelu"):
    """A trainer on each backend, both holding the weights `source` initialised."""
    config = dataclasses.replace(CONFIG, activation=activation)
    first = source.Trainer(config, TRAIN)
    other = MLX if source is TORCH else TORCH
    second = other.Trainer(config, TRAIN)
    second.load_checkpoint(first.checkpoint())
    return (first, second) if source is TORCH else (second, first)


def train_losses(trainer, sampler, schedule, steps, start=0) -> list[float]:
    results = [
        trainer.train_step(*sampler.batch(s), schedule.lr_at(s)) for s in range(start, steps)
    ]
    return trainer.to_host([loss for loss, _ in results])


@ACTIVATIONS
def test_logits_agree(tokens, parity_report, activation):
    torch_trainer, mlx_trainer = make_trainers(activation=activation)
    worst = 0.0
    for batch, length in [(1, 1), (2, 7), (3, CONFIG.max_seq_len), (1, 1)]:
        ids = tokens[: batch * length].reshape(batch, length)
        torch_logits = logits_of(TORCH, torch_trainer.model, ids)
        mlx_logits = logits_of(MLX, mlx_trainer.model, ids)
        worst = max(worst, float(np.abs(torch_logits - mlx_logits).max()))
    parity_report[f"logits max |diff| (float32, {activation})"] = worst
    assert worst <= 1e-4


@ACTIVATIONS
def test_gradients_agree(tokens, parity_report, activation):
    torch_trainer, mlx_trainer = make_trainers(activation=activation)
    x, y = BatchSampler(tokens, 32, 8, seed=0).batch(0)
    loss = torch_loss_fn(torch_trainer.model.train(), torch_trainer.to_device(x),
                         torch_trainer.to_device(y))  # fmt: skip
    loss.backward()
    torch_grads = {n: p.grad.cpu().numpy() for n, p in torch_trainer.model.named_parameters()}
    mlx_trainer.model.train()
    _, grads = mnn.value_and_grad(mlx_trainer.model, mlx_loss_fn)(
        mlx_trainer.model, mx.array(x), mx.array(y)
    )
    worst = 0.0
    for name, grad in tree_flatten(grads):
        reference = torch_grads[name]
        relative = np.linalg.norm(np.array(grad) - reference) / np.linalg.norm(reference)
        worst = max(worst, float(relative))
    parity_report[f"gradients worst relative diff (float32, {activation})"] = worst
    assert worst <= 1e-4


def test_fifty_adamw_steps_agree(tokens, parity_report):
    torch_trainer, mlx_trainer = make_trainers()
    sampler = BatchSampler(tokens, 32, 8, seed=TRAIN.seed)
    schedule = CosineSchedule(TRAIN.lr, 50, warmup_steps=5)
    torch_losses = train_losses(torch_trainer, sampler, schedule, 50)
    mlx_losses = train_losses(mlx_trainer, sampler, schedule, 50)
    loss_gap = float(np.abs(np.array(torch_losses) - np.array(mlx_losses)).max())
    torch_weights, mlx_weights = (
        torch_trainer.checkpoint().weights,
        mlx_trainer.checkpoint().weights,
    )
    weight_gap = max(float(np.abs(torch_weights[n] - mlx_weights[n]).max()) for n in torch_weights)
    parity_report["50 steps loss max |diff| (float32)"] = loss_gap
    parity_report["50 steps final weights max |diff| (float32)"] = weight_gap
    assert torch_losses[-1] < torch_losses[0] - 0.5  # it did learn
    assert loss_gap <= 1e-3 and weight_gap <= 1e-3


@ACTIVATIONS
def test_greedy_generation_is_identical(tokens, activation):
    torch_trainer, mlx_trainer = make_trainers(activation=activation)
    sampler = BatchSampler(tokens, 32, 8, seed=TRAIN.seed)
    train_losses(torch_trainer, sampler, CosineSchedule(TRAIN.lr, 60), 60)
    mlx_trainer.load_checkpoint(torch_trainer.checkpoint())
    greedy = SamplingSettings(temperature=0.0, max_new_tokens=200)
    texts = []
    for trainer in (torch_trainer, mlx_trainer):
        steps = generate_tokens(trainer.decoder(), tokens[:5].tolist(), greedy, None)
        texts.append([int(ids[0]) for ids in steps])
    assert len(texts[0]) == 200 and texts[0] == texts[1]


@pytest.mark.parametrize("first_backend", [TORCH, MLX], ids=["torch-then-mlx", "mlx-then-torch"])
def test_resume_on_the_other_backend(tokens, first_backend, parity_report):
    """20 steps on one backend, convert, 20 on the other ~= 40 steps on the first."""
    sampler = BatchSampler(tokens, 32, 8, seed=TRAIN.seed)
    schedule = CosineSchedule(TRAIN.lr, 40)
    straight = first_backend.Trainer(CONFIG, TRAIN)
    initial = straight.checkpoint()
    reference = train_losses(straight, sampler, schedule, 40)
    first = first_backend.Trainer(CONFIG, TRAIN)
    first.load_checkpoint(initial)
    head = train_losses(first, sampler, schedule, 20)
    other = (MLX if first_backend is TORCH else TORCH).Trainer(CONFIG, TRAIN)
    other.load_checkpoint(first.checkpoint())
    tail = train_losses(other, sampler, schedule, 40, start=20)
    gap = float(np.abs(np.array(head + tail) - np.array(reference)).max())
    parity_report[f"resume {first_backend.name}->other loss max |diff| (float32)"] = gap
    assert gap <= 1e-3
