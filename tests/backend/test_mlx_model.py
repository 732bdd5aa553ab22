"""The MLX GPT: canonical names, shapes, causality, init, KV cache, compiled step, BLAS loading.

The CPU-fast GELU and softmax have their own tests: tests/backend/test_mlx_cpu_math.py."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlx")  # the package only: mlx.core must come after myllm_mlx

import myllm_mlx  # noqa: F401  (loads the system BLAS before anything imports mlx.core)

# isort: split
import mlx.core as mx
from mlx.utils import tree_flatten

from myllm.config.settings import ModelConfig, TrainConfig
from myllm.train.dropout import dropout_keys, site_count
from myllm_mlx.model import (
    GPTModel,
    KVCache,
    count_parameters,
    loss_fn,
)
from myllm_mlx.precision import cast_parameters, parameters_swapped_in
from myllm_mlx.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
TINY = {"vocab_size": 11, "d_model": 32, "n_heads": 4, "n_layers": 2, "max_seq_len": 16}


def tiny_model(dropout: float = 0.0, seed: int = 0, **overrides) -> GPTModel:
    mx.random.seed(seed)
    model = GPTModel(ModelConfig(**{**TINY, **overrides}, dropout=dropout))
    model.eval()
    return model


def tokens(batch: int, length: int, seed: int = 0) -> mx.array:
    rng = np.random.default_rng(seed)
    return mx.array(rng.integers(0, TINY["vocab_size"], (batch, length)).astype(np.int32))


def test_parameter_names_are_torch_names_without_lm_head():
    torch_model = pytest.importorskip("myllm_torch.model")
    config = ModelConfig(**TINY)
    torch_names = [n for n in torch_model.GPTModel(config).state_dict() if n != "lm_head.weight"]
    mlx_names = [name for name, _ in tree_flatten(GPTModel(config).parameters())]
    assert mlx_names == torch_names
    assert count_parameters(GPTModel(config)) == torch_model.count_parameters(
        torch_model.GPTModel(config)
    )


def test_logits_and_loss_shapes():
    model = tiny_model()
    x = tokens(3, 7)
    assert model(x).shape == (3, 7, TINY["vocab_size"])
    loss = loss_fn(model, x, tokens(3, 7, seed=1))
    assert loss.shape == ()
    # An untrained model is close to uniform: loss near log(vocab).
    assert abs(loss.item() - math.log(TINY["vocab_size"])) < 0.5


@pytest.mark.parametrize("training", [False, True])
def test_changing_a_later_token_leaves_earlier_logits_unchanged(training):
    # training=True runs the explicit softmax + dropout path; the same keys give the same masks.
    model = tiny_model(dropout=0.1 if training else 0.0)
    model.train(training)
    x = tokens(2, 12)
    changed = x.astype(mx.int32)
    changed[:, 8] = (x[:, 8] + 1) % TINY["vocab_size"]
    keys = mx.array(dropout_keys(5, 0, 0, 2, site_count(TINY["n_layers"])))
    before = model(x, keys=keys)
    after = model(changed, keys=keys)
    earlier = np.abs(np.array(before[:, :8]) - np.array(after[:, :8])).max()
    assert earlier <= 1e-6  # float32: identical up to rounding
    assert np.abs(np.array(before[:, 8:]) - np.array(after[:, 8:])).max() > 1e-4


def test_kv_cache_gives_the_full_forward_logits():
    model = tiny_model()
    x = tokens(2, 12)
    full = np.array(model(x))
    cache = KVCache(model.config, batch_size=2)
    pieces = [model(x[:, :5], cache), model(x[:, 5:8], cache)]  # a prompt, then a chunk of 3
    pieces += [model(x[:, t : t + 1], cache) for t in range(8, 12)]  # then one token at a time
    assert cache.offset == 12
    incremental = np.concatenate([np.array(p) for p in pieces], axis=1)
    assert np.abs(incremental - full).max() <= 1e-5  # float32, other summation order


def test_positions_beyond_max_seq_len_are_an_error():
    model = tiny_model()
    with pytest.raises(ValueError, match="exceed max_seq_len"):
        model(tokens(1, TINY["max_seq_len"] + 1))


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_compiled_training_step_matches_eager(dropout):
    """The real Trainer's step, mx.compile'd and eager: float32 losses and weights within 1e-5.

    With dropout, the compiled step draws the same masks: the keys are inputs of the step.
    """

    def two_steps(compile: bool):
        config = ModelConfig(**TINY, dropout=dropout)
        train_config = TrainConfig(
            lr=1e-2, seed=3, device="cpu", compile="on" if compile else "off"
        )
        trainer = Trainer(config, train_config)
        assert trainer.compiled is compile
        rng = np.random.default_rng(0)
        losses = []
        for step in range(2):
            x, y = (rng.integers(0, TINY["vocab_size"], (4, 16)) for _ in range(2))
            loss, _ = trainer.train_step(x, y, train_config.lr, step=step)
            losses.append(loss.item())
        return losses, dict(tree_flatten(trainer.model.parameters()))

    eager_losses, eager_weights = two_steps(compile=False)
    compiled_losses, compiled_weights = two_steps(compile=True)
    assert np.allclose(eager_losses, compiled_losses, atol=1e-5)  # float32
    for name, weight in eager_weights.items():
        assert np.abs(np.array(weight) - np.array(compiled_weights[name])).max() <= 1e-5, name


def run_import(blas: str) -> subprocess.CompletedProcess:
    code = "import myllm_mlx.blas as b, myllm_mlx; print(b.blas_in_use())"
    env = {**os.environ, "MYLLM_BLAS": blas, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )


def test_missing_blas_path_is_a_clear_user_error():
    result = run_import("/nonexistent/libopenblas.so.0")
    assert result.returncode != 0
    assert "UserError" in result.stderr
    assert "MYLLM_BLAS=/nonexistent/libopenblas.so.0 does not exist" in result.stderr
    assert "apt-get install libopenblas0-pthread" in result.stderr


def test_blas_none_keeps_the_reference_blas():
    result = run_import("none")
    assert result.returncode == 0, result.stderr
    expected = "accelerate" if sys.platform == "darwin" else "reference"
    assert result.stdout.startswith(expected)


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS uses Accelerate")
def test_no_blas_found_warns_once_with_the_fix():
    from myllm_mlx import blas

    with pytest.warns(RuntimeWarning, match="apt-get install libopenblas0-pthread") as record:
        described = blas._choose_blas("", search_paths=(), mlx_imported=False)
    assert described.startswith("reference")
    assert len(record) == 1


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS uses Accelerate")
def test_blas_cannot_be_swapped_after_mlx_core_is_imported():
    code = "import mlx.core, myllm_mlx.blas as b; print(b.blas_in_use())"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MYLLM_BLAS", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "mlx.core was imported before myllm_mlx" in result.stdout


def test_system_openblas_is_found_by_default():
    from myllm_mlx import blas

    if sys.platform == "darwin" or not any(os.path.exists(p) for p in blas.SEARCH_PATHS):
        pytest.skip("no system OpenBLAS at the usual paths")
    env = {k: v for k, v in os.environ.items() if k != "MYLLM_BLAS"}
    code = "import myllm_mlx.blas as b; print(b.blas_in_use())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.startswith("openblas ("), result.stderr


def test_swapped_in_parameters_are_undone_when_the_forward_raises():
    """A failed low-dtype forward leaves the float32 masters in place: checkpoints save them."""
    model = tiny_model()
    masters = dict(tree_flatten(model.parameters()))
    low = cast_parameters(model.parameters(), "bfloat16")
    with pytest.raises(RuntimeError, match="inside"), parameters_swapped_in(model, low):
        assert model.token_embedding.weight.dtype == mx.bfloat16
        raise RuntimeError("inside")
    for name, value in tree_flatten(model.parameters()):
        assert value.dtype == mx.float32 and value is masters[name], name
    with parameters_swapped_in(model, None):  # None: the model's own weights, nothing swapped
        assert model.token_embedding.weight is masters["token_embedding.weight"]
