"""The GPU paths, as far as a CPU can express them: stand-in devices, generators and timings.

docs/gpu_paths.md lists what only a GPU run (benchmarks/gpu_check.sh) executes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from functools import partial
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import myllm_mlx.device as mlx_device
import myllm_torch.device as torch_device
import myllm_torch.distributed as torch_distributed
import myllm_torch.trainer as torch_trainer
from myllm.backend.registry import load_backend
from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.cli import app
from myllm.config.settings import ModelSettings, TrainConfig
from myllm.errors import UserError
from myllm.train import setup as training
from myllm.train.dropout import dropout_keys
from myllm.train.resume import resumed_train_config
from myllm.train.setup import run_training
from myllm_mlx.tf32 import set_tf32_environment
from myllm_torch.dropout import Dropout
from myllm_torch.model import explicit_attention, use_fused_attention
from tests.helpers import TINY_MODEL, tiny_model_config, tiny_train_config

# --- 1. TF32: off unless asked, read back from each framework ---


@pytest.fixture
def restore_tf32(monkeypatch):
    """Leave torch's matmul precision and MLX's variable as the test found them."""
    monkeypatch.setenv("MLX_ENABLE_TF32", os.environ.get("MLX_ENABLE_TF32", "0"))
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


def test_tf32_setting_is_read_back_from_torch(restore_tf32):
    assert torch_device.set_matmul_precision(True) == "tf32"
    assert torch.backends.cuda.matmul.allow_tf32 is True
    assert torch_device.set_matmul_precision(False) == "float32"
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.backends.cuda.matmul.allow_tf32 is False


def test_tf32_setting_is_read_back_from_mlx(restore_tf32, monkeypatch):
    assert mlx_device.set_matmul_precision(True) == "tf32"
    assert os.environ["MLX_ENABLE_TF32"] == "1"
    assert mlx_device.set_matmul_precision(False) == "float32"
    assert os.environ["MLX_ENABLE_TF32"] == "0"
    # What myllm_mlx/__init__.py sets before mlx.core is imported: off unless MYLLM_TF32 says on.
    monkeypatch.delenv("MYLLM_TF32", raising=False)
    set_tf32_environment()
    assert os.environ["MLX_ENABLE_TF32"] == "0"
    monkeypatch.setenv("MYLLM_TF32", "yes")
    set_tf32_environment()
    assert os.environ["MLX_ENABLE_TF32"] == "1"
    monkeypatch.setenv("MYLLM_TF32", "maybe")
    with pytest.raises(UserError, match="MYLLM_TF32='maybe' is not a yes/no value"):
        set_tf32_environment()


@pytest.mark.parametrize("backend_name", ["torch", "mlx"])
def test_float32_is_the_default_and_run_json_records_it(
    backend_name, text_file, tmp_path, restore_tf32
):
    config = tiny_train_config(text_file, tmp_path / "run", max_steps=2, eval_iters=1)
    run_training(backend_name, config, ModelSettings(**TINY_MODEL))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["matmul_precision"] == "float32"
    assert info["train_config"]["tf32"] is False


class StandInDevice:
    """Looks like torch.device('mps') to the code that asks for a device's type."""

    def __init__(self, kind: str):
        self.type = kind


# --- 2. host-to-device copies of token ids ---


def test_token_ids_reach_the_device_as_int64_copies():
    trainer = torch_trainer.Trainer(tiny_model_config(), TrainConfig(device="cpu"))
    batch = np.arange(32, dtype=np.int32).reshape(4, 8)[:, ::2]  # a non-contiguous slice
    ids = trainer.to_device(batch)
    assert ids.dtype == torch.long and np.array_equal(ids.numpy(), batch)
    batch[:] = -1  # the copy does not alias the caller's array
    assert ids.min().item() >= 0


# --- 3. attention dropout: explicit on every device ---


def test_dropout_takes_the_explicit_attention_on_every_device():
    # SDPA's dropout_p draws from torch's generator; the counter-based mask needs the explicit form
    for device_type in ("mps", "cuda", "cpu"):
        assert attention_choice(device_type, torch.float32, True) is False
    assert attention_choice("mps", torch.float32, False) is True
    assert attention_choice("cuda", torch.bfloat16, False) is True


def test_cpu_takes_the_explicit_form_without_dropout_only_for_low_precision_training():
    assert attention_choice("cpu", torch.float32, False) is True
    assert attention_choice("cpu", torch.float16, False) is False
    assert attention_choice("cpu", torch.bfloat16, False, requires_grad=False) is True


def attention_choice(
    device_type: str, dtype: torch.dtype, dropout_on: bool, requires_grad: bool = True
) -> bool:
    """use_fused_attention for a query on `device_type` (a stand-in object: no such device is
    needed to ask)."""
    query = SimpleNamespace(
        device=torch.device(device_type), dtype=dtype, requires_grad=requires_grad
    )
    return use_fused_attention(query, dropout_on)


@pytest.mark.parametrize("query_length", [6, 2])  # square causal; 2 queries after 4 cached keys
def test_explicit_attention_equals_sdpa_without_dropout(query_length):
    """float32, tolerance 1e-6: the same softmax(q k^T / sqrt(hd)) v, summed in another order."""
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, query_length, 8, generator=generator)
    k, v = (torch.randn(2, 3, 6, 8, generator=generator) for _ in range(2))
    is_causal = query_length == 6
    mask = None if is_causal else torch.ones(query_length, 6, dtype=torch.bool).tril(6 - 2)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
    explicit = explicit_attention(q, k, v, mask, is_causal)
    torch.testing.assert_close(explicit, fused, atol=1e-6, rtol=1e-6)


def test_explicit_attention_drops_the_weights_its_keys_choose():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 16, 8, generator=generator) for _ in range(3))
    v = torch.ones_like(v)  # each output row is then the sum of its kept, rescaled weights
    dropout = Dropout(0.5, site=0).train()
    keys = torch.from_numpy(dropout_keys(5, 0, 0, 1, 1).view(np.int32))
    first = explicit_attention(q, k, v, None, True, partial(dropout, keys=keys))
    second = explicit_attention(q, k, v, None, True, partial(dropout, keys=keys))
    assert torch.equal(first, second)
    undropped = explicit_attention(q, k, v, None, True)
    torch.testing.assert_close(undropped, torch.ones_like(undropped))  # float32, 1e-5
    assert not torch.allclose(first, undropped)  # weights were dropped and the rest rescaled


# --- 4. tokens/s counts the wait for an asynchronous device ---

DRAIN_S = 0.2


class QueueingTrainer(torch_trainer.Trainer):
    """A step that returns before its work is done: to_host pays for the queue (sleeps).

    Records each log window as (first train_step call, to_host's return), perf_counter times.
    """

    windows: ClassVar[list[tuple[float, float]]] = []
    window_start: float | None = None

    def train_step(self, x, y, lr, batch_rows=None, step=0):
        if self.window_start is None:
            self.window_start = time.perf_counter()
        return super().train_step(x, y, lr, batch_rows, step)

    def to_host(self, values: list) -> list[float]:
        time.sleep(DRAIN_S)
        host_values = super().to_host(values)
        self.windows.append((self.window_start, time.perf_counter()))
        self.window_start = None
        return host_values


def test_logged_tokens_per_second_include_the_queue_drain(monkeypatch, text_file, tmp_path):
    monkeypatch.setattr(QueueingTrainer, "windows", [])
    use_trainer(monkeypatch, QueueingTrainer)
    config = tiny_train_config(text_file, tmp_path / "run", max_steps=10, log_interval=5)
    run_training("torch", config, ModelSettings(**TINY_MODEL))
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    rates = [record["tokens_per_second"] for record in map(json.loads, lines) if "lr" in record]
    window_tokens = 5 * config.batch_size * config.block_size
    assert len(rates) == len(QueueingTrainer.windows) == 2
    # Timed before the drain, a window would be DRAIN_S shorter than its steps and drain.
    for rate, (first_step, drained) in zip(rates, QueueingTrainer.windows, strict=True):
        assert rate <= window_tokens / (drained - first_step)


# --- 6. bench: torch's MPS memory without MLX's in it ---


@pytest.mark.parametrize(("peak", "expected", "source"), [
    (123, 123, "torch.accelerator.max_memory_allocated"),
    (0, 456, "torch.mps.current_allocated_memory"),
])  # fmt: skip
def test_bench_reads_torchs_own_mps_counters(peak, expected, source, monkeypatch):
    from myllm_torch.bench_ops import BenchOps as TorchOps

    resets = []
    monkeypatch.setattr(torch.accelerator, "reset_peak_memory_stats", lambda: resets.append(1))
    monkeypatch.setattr(torch.accelerator, "max_memory_allocated", lambda: peak)
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 456)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 10**9)  # never this one
    float32 = SimpleNamespace(low=False)  # the stand-in trainer's Precision
    ops = TorchOps(SimpleNamespace(device=StandInDevice("mps"), precision=float32))
    ops.reset_peak_memory()
    assert ops.peak_memory_bytes() == expected and resets == [1]
    assert ops.memory_source().startswith(source)


# --- 7. data-parallel ranks agree on stopping at log points only ---


REAL_TRAINER = torch_trainer.Trainer


def use_trainer(monkeypatch, make_trainer) -> None:
    """run_training("torch", ...) builds its trainers with `make_trainer`."""
    patched = dataclasses.replace(load_backend("torch"), Trainer=make_trainer)
    monkeypatch.setattr(training, "load_backend", lambda name: patched)


class RankZeroOfTwo:
    """A single-process trainer presented to the loop as rank 0 of 2; records stop agreements."""

    def __init__(self, model_config, train_config):
        self.inner = REAL_TRAINER(model_config, train_config)
        self.rank, self.world_size = 0, 2
        self.agreed_at: list[int] = []
        self.steps = 0
        self.signal_from_other_rank_at: int | None = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def train_step(self, x, y, lr, batch_rows=None, step=0):
        self.steps += 1
        return self.inner.train_step(x, y, lr, step=step)

    def max_over_ranks(self, value: int) -> int:
        self.agreed_at.append(self.steps)
        if self.steps == self.signal_from_other_rank_at:
            return 2  # rank 1 got SIGINT
        return value


def test_data_parallel_ranks_agree_on_stopping_at_log_points(monkeypatch, text_file, tmp_path):
    made: list[RankZeroOfTwo] = []

    def make(model_config, train_config):
        made.append(RankZeroOfTwo(model_config, train_config))
        made[-1].signal_from_other_rank_at = 10
        return made[-1]

    use_trainer(monkeypatch, make)
    config = tiny_train_config(text_file, tmp_path / "run", max_steps=20, log_interval=5)
    result = run_training("torch", config, ModelSettings(**TINY_MODEL))
    # The start and each log point (the stop signal, the periodic save's clock), not every step.
    assert sorted(set(made[0].agreed_at)) == [0, 5, 10]
    assert result.step == 10 and result.interrupted_by == 2


def test_batch_share_is_made_once_per_shard_and_batch_size():
    trainer = torch_trainer.Trainer(tiny_model_config(), TrainConfig(device="cpu"))
    first = trainer.batch_share(4, 7)
    assert trainer.batch_share(4, 7) is first  # cached: no copy, no all-reduce
    assert first.item() == pytest.approx(4 / 7, rel=1e-7)
    assert trainer.batch_share(1, 1).item() == 1.0


# --- 8. the device belongs to the machine, not to the run ---


def test_resume_drops_the_stored_device_unless_given():
    stored = TrainConfig(device="gpu", lr=1e-3).to_dict()
    assert resumed_train_config(stored, {}).device == "auto"
    assert resumed_train_config(stored, {}).lr == 1e-3
    assert resumed_train_config(stored, {"device": "cpu"}).device == "cpu"


def test_torch_takes_gpu_as_the_accelerator_here(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_device.resolve_device("gpu") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="device 'gpu' is not available on this machine"):
        torch_device.resolve_device("gpu")


def test_torchrun_remaps_a_stored_cuda_index_to_the_local_rank(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert torch_distributed.rank_device(torch.device("cuda", 0)) == torch.device("cuda", 3)
    assert chosen == [torch.device("cuda", 3)]
    assert torch_distributed.rank_device(torch.device("cpu")) == torch.device("cpu")


def test_an_mlx_gpu_run_resumes_with_torch_on_this_machine(text_file, tmp_path):
    """Saved by MLX with --device gpu (written into the checkpoint), resumed by torch here."""
    config = tiny_train_config(text_file, tmp_path / "mlx", max_steps=4, eval_iters=1)
    run_training("mlx", config, ModelSettings(**TINY_MODEL))
    checkpoint = read_checkpoint(tmp_path / "mlx" / "checkpoint_last.safetensors")
    assert checkpoint.train_config["device"] == "cpu"
    checkpoint.train_config["device"] = "gpu"  # as an MLX run on a Mac or CUDA box stores it
    (tmp_path / "torch").mkdir()
    write_checkpoint(tmp_path / "torch" / "checkpoint_last.pt", checkpoint)
    (tmp_path / "torch" / "tokenizer.json").write_bytes(
        (tmp_path / "mlx" / "tokenizer.json").read_bytes()
    )

    resume = str(tmp_path / "torch" / "checkpoint_last.pt")
    args = ["train", "--backend", "torch", "--resume", resume, "--max-steps", "6"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "torch" / "run.json").read_text())
    assert info["device"].startswith("cpu") and info["train_config"]["device"] == "auto"
    assert read_checkpoint(tmp_path / "torch" / "checkpoint_last.pt").training.step == 6


# --- 11. no slow-BLAS warning where MLX runs its matmuls on a GPU ---


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS uses Accelerate")
def test_no_blas_warning_with_an_mlx_cuda_build():
    from myllm_mlx import blas

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would fail the test
        described = blas._choose_blas("", search_paths=(), mlx_imported=False, gpu_build=True)
    assert described.startswith("reference") and "CUDA" in described
    assert blas.mlx_gpu_build_installed() is False  # this machine has mlx[cpu]


def test_init_process_group_takes_device_id_in_this_torch():
    assert torch_distributed.accepts_device_id()
