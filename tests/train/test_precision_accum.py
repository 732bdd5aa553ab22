"""Mixed precision, loss scaling and gradient accumulation on both backends (CPU, tiny model)."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from myllm.backend.precision import DeviceFacts, choose_dtype, dtype_reason, native_bf16_flags
from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.config.settings import ModelSettings, TrainConfig
from myllm.data.accumulation import micro_batches
from myllm.data.sampler import BatchSampler
from myllm.errors import UserError
from myllm.train.setup import run_training
from tests.helpers import (
    BACKENDS,
    DISTRIBUTED_SETTINGS,
    DISTRIBUTED_TEXT_LENGTH,
    TINY_MODEL,
    assert_checkpoints_identical,
    assert_losses_close,
    losses_by_step,
    metric_records,
    resume_from,
    sample_text,
    signal_at_step,
    tiny_model_config,
    tiny_train_config,
    train_on_two_ranks,
)

STEPS = 10


@pytest.fixture(autouse=True)
def one_thread():
    """Torch on one thread: tiny models run fastest so on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tokens() -> np.ndarray:
    return np.frombuffer(sample_text(4000).encode("ascii", "replace"), np.uint8) % 65


def losses_of(backend, accum_steps: int, batch_size: int = 12, **overrides) -> list[float]:
    """Per-step losses of STEPS steps on the sampler's batches, dropout off (dropout draws
    differ with the micro-batch shapes), float32 unless overridden."""
    config = TrainConfig(
        batch_size=batch_size, block_size=16, lr=3e-3, seed=3, device="cpu",
        grad_accum_steps=accum_steps, **{"dtype": "float32", **overrides},
    )  # fmt: skip
    trainer = backend.Trainer(tiny_model_config(), config)
    sampler = BatchSampler(tokens(), 16, batch_size, seed=3)
    results = [trainer.train_step(*sampler.batch(step), 3e-3) for step in range(STEPS)]
    return [loss for loss, _ in (trainer.to_host(list(pair)) for pair in results)]


def test_micro_batches_split_rows_and_weigh_them_by_window_count():
    x = np.arange(7 * 3).reshape(7, 3)
    pieces = micro_batches(x, x + 1, 4)
    assert [len(px) for px, _, _ in pieces] == [2, 2, 2, 1]
    assert [w for _, _, w in pieces] == [2 / 7, 2 / 7, 2 / 7, 1 / 7]
    np.testing.assert_array_equal(np.concatenate([px for px, _, _ in pieces]), x)
    assert len(micro_batches(x[:3], x[:3], 4)) == 3  # empty micro-batches are dropped


@pytest.mark.parametrize(("batch_size", "accum_steps"), [(12, 4), (11, 4)], ids=["even", "uneven"])
def test_accumulated_steps_equal_the_whole_batch_step_float32(backend, batch_size, accum_steps):
    """float32, tolerance 1e-5 absolute on every step's loss over 10 steps; the uneven case
    (11 rows in pieces 3, 3, 3, 2) checks the window-count weighting of a short last batch."""
    whole = losses_of(backend, 1, batch_size)
    accumulated = losses_of(backend, accum_steps, batch_size)
    np.testing.assert_allclose(accumulated, whole, rtol=0, atol=1e-5)
    assert whole[-1] < whole[0]  # it trained


def test_bfloat16_trains_close_to_float32(backend):
    """bfloat16 compute, float32 masters: the losses follow float32's within 0.05 (measured
    worst ~0.01 on this tiny model) over 10 steps, and they fall."""
    float32 = losses_of(backend, 1, dtype="float32")
    bfloat16 = losses_of(backend, 1, dtype="bfloat16")
    np.testing.assert_allclose(bfloat16, float32, rtol=0, atol=0.05)
    assert bfloat16[-1] < bfloat16[0]


def force_overflow(trainer, backend_name: str) -> None:
    """Set the float16 loss scale so high that every scaled gradient overflows."""
    if backend_name == "torch":
        import torch

        trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1e38)
    else:
        import mlx.core as mx

        trainer.loss_scale.state["scale"] = mx.array(1e38)


def test_float16_overflowing_steps_are_skipped_and_counted(backend):
    """A step whose scaled gradients overflow changes no weight, halves the scale, is counted;
    the loss scale then comes down and later steps train (float16 autocast exists on torch CPU)."""
    config = TrainConfig(
        batch_size=8, block_size=16, lr=3e-3, seed=3, device="cpu", dtype="float16"
    )
    trainer = backend.Trainer(tiny_model_config(), config)
    force_overflow(trainer, backend.name)
    sampler = BatchSampler(tokens(), 16, 8, seed=3)
    before = trainer.checkpoint().weights
    loss, grad_norm = trainer.to_host(list(trainer.train_step(*sampler.batch(0), 3e-3)))
    assert np.isfinite(loss) and grad_norm == 0.0
    assert trainer.skipped_steps() == 1
    for name, array in trainer.checkpoint().weights.items():
        np.testing.assert_array_equal(array, before[name])
    assert trainer.checkpoint().optimizer is None or trainer.checkpoint().optimizer.step == 0
    for step in range(1, 200):  # 1e38 halves to a usable scale within ~110 skipped steps
        trainer.train_step(*sampler.batch(step), 3e-3)
        if trainer.skipped_steps() < step + 1:
            break
    skipped = trainer.skipped_steps()
    assert 100 < skipped < 200
    trainer.train_step(*sampler.batch(300), 3e-3)
    assert trainer.skipped_steps() == skipped  # training resumed
    changed = trainer.checkpoint().weights["token_embedding.weight"]
    assert not np.array_equal(changed, before["token_embedding.weight"])


def test_float16_loss_scale_and_skipped_steps_survive_a_checkpoint_file(backend, tmp_path):
    """Three overflowing steps halve the scale three times and are counted; a trainer restored
    from the written checkpoint has that scale and count, and its next step is bit-identical."""
    config = TrainConfig(
        batch_size=8, block_size=16, lr=3e-3, seed=3, device="cpu", dtype="float16"
    )
    trainer = backend.Trainer(tiny_model_config(), config)
    force_overflow(trainer, backend.name)
    sampler = BatchSampler(tokens(), 16, 8, seed=3)
    for step in range(3):
        trainer.train_step(*sampler.batch(step), 3e-3)
    path = tmp_path / f"checkpoint{backend.checkpoint_format.suffix}"
    write_checkpoint(path, trainer.checkpoint())
    saved = read_checkpoint(path)
    assert saved.loss_scale is not None
    assert (saved.loss_scale.skipped_steps, saved.loss_scale.good_steps) == (3, 0)
    assert saved.loss_scale.scale == pytest.approx(1e38 / 8, rel=1e-6)
    restored = backend.Trainer(tiny_model_config(), config)
    restored.load_checkpoint(saved)
    assert restored.skipped_steps() == 3
    assert restored.checkpoint().loss_scale == trainer.checkpoint().loss_scale
    batch = sampler.batch(3)
    after = [one.to_host(list(one.train_step(*batch, 3e-3))) for one in (trainer, restored)]
    assert after[0] == after[1]
    assert_checkpoints_identical(trainer.checkpoint(), restored.checkpoint())


def test_torch_low_precision_decoder_equals_autocast_bit_for_bit():
    """bfloat16, tolerance 0: the decoder's Linear weights are cast once, not at every forward,
    and the logits are exactly the autocast forward's, with and without a KV cache."""
    import torch

    from myllm_torch.generate import Decoder
    from myllm_torch.model import GPTModel, KVCache
    from myllm_torch.precision import autocast

    torch.manual_seed(0)
    model = GPTModel(tiny_model_config()).eval()
    decoder = Decoder(model, "bfloat16")
    ids = tokens()[:24].reshape(2, 12).astype(np.int64)
    with torch.inference_mode(), autocast(decoder.device, "bfloat16"):
        whole = model(torch.from_numpy(ids))[:, -1].float().numpy()
        prefix_cache = KVCache(model.config, 2, decoder.device)
        model(torch.from_numpy(ids[:, :-1]), prefix_cache)
        cached = model(torch.from_numpy(ids[:, -1:]), prefix_cache)[:, -1].float().numpy()
    np.testing.assert_array_equal(decoder.last_logits(ids, None), whole)
    cache = decoder.new_cache(2)
    decoder.last_logits(ids[:, :-1], cache)
    np.testing.assert_array_equal(decoder.last_logits(ids[:, -1:], cache), cached)
    assert model.lm_head.weight is model.token_embedding.weight  # the model is left as it was
    assert model.lm_head.weight.dtype == torch.float32


def test_auto_dtype_is_bfloat16_where_the_device_computes_it_fast_and_float32_elsewhere():
    assert choose_dtype("auto", DeviceFacts("cpu", False)) == "float32"
    native = DeviceFacts("cpu", True, "the CPU computes bfloat16 natively (avx512_bf16)")
    assert choose_dtype("auto", native) == "bfloat16"
    assert choose_dtype("auto", native, decoding=True) == "float32"  # batch-1 decoding: float32
    assert choose_dtype("bfloat16", native, decoding=True) == "bfloat16"  # asked for: obeyed
    assert dtype_reason("auto", native) == "auto: the CPU computes bfloat16 natively (avx512_bf16)"
    assert dtype_reason("float32", native) == "--dtype float32"
    assert native_bf16_flags({"avx2", "avx512_bf16", "amx_bf16"}) == ["amx_bf16", "avx512_bf16"]
    assert native_bf16_flags({"avx2", "avx512f"}) == []
    assert choose_dtype("auto", DeviceFacts("cuda", True)) == "bfloat16"
    assert choose_dtype("auto", DeviceFacts("cuda", False)) == "float32"
    assert choose_dtype("auto", DeviceFacts("mps", True)) == "bfloat16"
    assert choose_dtype("float16", DeviceFacts("cpu", False)) == "float16"
    with pytest.raises(UserError, match="--dtype"):
        TrainConfig(dtype="fp8")
    with pytest.raises(UserError, match="--compile"):
        TrainConfig(compile="maybe")
    with pytest.raises(UserError, match="--grad-accum-steps"):
        TrainConfig(grad_accum_steps=0)


def test_the_dtype_is_printed_recorded_and_kept_on_resume(backend, tmp_path):
    text = tmp_path / "input.txt"
    text.write_text(sample_text(2000), encoding="utf-8")
    config = tiny_train_config(text, tmp_path / "run", max_steps=3, dtype="bfloat16")
    run_training(backend.name, config, ModelSettings(**TINY_MODEL))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["precision"]["dtype"] == "bfloat16"
    assert info["train_config"]["dtype"] == "bfloat16"
    last = tmp_path / "run" / f"checkpoint_last{backend.checkpoint_suffix}"
    assert read_checkpoint(last).train_config["dtype"] == "bfloat16"
    auto = tiny_train_config(text, tmp_path / "auto", max_steps=1, dtype="auto")
    run_training(backend.name, auto, ModelSettings(**TINY_MODEL))
    info = json.loads((tmp_path / "auto" / "run.json").read_text())
    native = backend.name == "torch" and native_bf16_flags()  # MLX: float32 on every CPU
    assert info["precision"]["dtype"] == ("bfloat16" if native else "float32")
    assert info["precision"]["dtype_reason"].startswith("auto: ")


@pytest.mark.parametrize(
    ("backend_name", "dtype"), [("torch", "bfloat16"), ("torch", "float16"), ("mlx", "float16")]
)
def test_interrupted_and_resumed_low_precision_run_equals_the_uninterrupted_one(
    backend_name, dtype, tmp_path, monkeypatch
):
    """CPU, low-precision compute, dropout 0.1: losses and final state bit-identical, float16's
    loss scale included (its good-step count runs on across the resume)."""
    from myllm.backend.registry import load_backend

    backend = load_backend(backend_name)
    suffix = backend.checkpoint_format.suffix
    text = tmp_path / "small.txt"
    text.write_text(sample_text(700), encoding="utf-8")
    model = ModelSettings(**{**TINY_MODEL, "dropout": 0.1})

    def config(directory: str):
        return tiny_train_config(
            text, tmp_path / directory, epochs=2, batch_size=32, log_interval=1, eval_iters=2,
            dtype=dtype,
        )  # fmt: skip

    whole = run_training(backend_name, config("a"), model)
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.Trainer, 13, signal.SIGTERM)
        first = run_training(backend_name, config("b"), model)
    assert first.step == 13
    resumed = resume_from(backend, tmp_path / "b" / f"checkpoint_last{suffix}")
    assert resumed.step == whole.step
    assert metric_records(tmp_path / "b") == metric_records(tmp_path / "a")
    final = read_checkpoint(tmp_path / "a" / f"checkpoint_last{suffix}")
    assert_checkpoints_identical(
        final, read_checkpoint(tmp_path / "b" / f"checkpoint_last{suffix}")
    )
    assert (final.loss_scale is not None) == (dtype == "float16")


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_two_ranks_accumulating_train_like_one_process_without(backend_name, tmp_path):
    """2 ranks x 2 micro-batches (global batch 7: shards 4 + 3, micro-batches 2 + 2 and 2 + 1,
    an empty shard at each epoch's end) equal 1 process with whole batches: float32, 1e-5."""
    data = tmp_path / "input.txt"
    data.write_text(sample_text()[:DISTRIBUTED_TEXT_LENGTH], encoding="utf-8")
    two, one = tmp_path / "two", tmp_path / "one"
    train_on_two_ranks(backend_name, data, two, "--grad-accum-steps", "2")
    config = TrainConfig(data=str(data), checkpoint_dir=str(one), **DISTRIBUTED_SETTINGS)
    assert run_training(backend_name, config, ModelSettings(**TINY_MODEL)).exit_code == 0
    assert_losses_close(losses_by_step(two), losses_by_step(one))


def test_mlx_eager_step_equals_the_compiled_step():
    """--compile off runs MLX's step eagerly: the same float32 losses within 1e-6 (measured 0)."""
    from myllm.backend.registry import load_backend

    backend = load_backend("mlx")
    np.testing.assert_allclose(
        losses_of(backend, 1, compile="off"), losses_of(backend, 1, compile="on"), rtol=0, atol=1e-6
    )


@pytest.mark.skipif(
    not os.environ.get("MYLLM_SLOW_TESTS"),
    reason="torch.compile builds C++ kernels: 372 s for this tiny model on the shared 2-core CI "
    "machine, over the suite's 60 s per-test budget; MYLLM_SLOW_TESTS=1 runs it",
)
def test_torch_compiled_step_equals_the_eager_step():
    """--compile on: the same float32 losses as eager within 1e-5 (measured 2.4e-7)."""
    from myllm.backend.registry import load_backend

    backend = load_backend("torch")
    np.testing.assert_allclose(
        losses_of(backend, 1, compile="on"), losses_of(backend, 1, compile="off"), rtol=0, atol=1e-5
    )


def test_a_bench_matrix_measures_its_cells_interleaved(monkeypatch):
    """Each repeat runs every cell in turn (float32, bfloat16, float32, ...), so the cells'
    ratio is taken side by side; each cell gets its own report in its own dtype, naming it and
    why, and its matmul peak is the best of the square and the model's GEMM shapes."""
    from myllm.bench import BenchSettings, matmul_peak, run_matrix
    from myllm.bench.runner import Worker

    order = []
    ask = Worker.ask

    def recording(worker, op, **fields):
        if op == "measure" and fields["index"] == 0:  # training
            order.append(worker.settings.dtype)
        return ask(worker, op, **fields)

    monkeypatch.setattr(Worker, "ask", recording)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers inherit it: plumbing, not speed
    common = {"backends": ["torch"], "config": "tiny", "steps": 1, "warmup": 1, "repeats": 2,
              "gen_tokens": 4, "device": "cpu", "matmul_size": 128, "compile": "off"}  # fmt: skip
    reports = run_matrix([BenchSettings(**common, dtype=d) for d in ("float32", "bfloat16")])
    assert order == ["float32", "bfloat16", "float32", "bfloat16"]
    dtypes = [report["backends"]["torch"]["dtype"] for report in reports]
    assert dtypes == ["float32", "bfloat16"]
    assert all(len(report["backends"]["torch"]["seconds"]["train"]) == 2 for report in reports)
    info = reports[1]["backends"]["torch"]
    assert info["compiled"] is False
    assert info["precision"] == "bfloat16 compute (float32 weights) (--dtype bfloat16), eager"
    assert info["dtype_reason"] == "--dtype bfloat16" and info["decode_dtype"] == "bfloat16"
    assert "256x64x256" in info["matmul_sweep_seconds"]  # batch 8 x block 32 tokens, d_ff 256
    square = 2 * 128**3 / info["seconds"]["matmul"][0]
    peak = matmul_peak(128, info["seconds"]["matmul"][0], info["matmul_sweep_seconds"])
    assert info["figures"]["matmul_peak_flops_per_s"] == peak >= square
