"""`myllm bench`: every backend end to end on the tiny config, the FLOP count, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from myllm.backend.registry import load_backend
from myllm.bench import (
    ROWS,
    BenchSettings,
    flop_parameter_count,
    markdown_table,
    model_flops_per_token,
    resolve_plan,
    run_bench,
    select_backends,
)
from myllm.config.settings import ModelConfig
from myllm.errors import UserError
from tests.helpers import BACKENDS

FIGURES = {key for _, key, _ in ROWS}
BACKEND_FIELDS = {"device", "gpu", "versions", "blas", "dtype", "compiled", "memory_source",
                  "rss_source", "matmuls_per_repeat", "figures", "seconds"}  # fmt: skip
SECONDS = {"train", "forward", "generate_kv", "generate_no_kv", "generate_batched", "decode_step",
           "model_step", "matmul"}  # fmt: skip
FAST = {"config": "tiny", "steps": 2, "warmup": 1, "repeats": 2, "gen_tokens": 8,
        "device": "cpu", "matmul_size": 128}  # fmt: skip


# The tests check the plumbing, not the speed: one thread keeps them fast on a shared CPU, where two
# OpenMP threads stall each other whenever another process holds one of the cores.
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def one_torch_thread():
    if runnable("torch"):
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def runnable(name: str) -> str | None:
    """None when backend `name` can run here, else why not (its modules do not import)."""
    try:
        load_backend(name)
    except (ImportError, UserError) as error:
        return f"backend {name!r} cannot run here: {error}"
    return None


def runnable_backends() -> list[str]:
    return [name for name in BACKENDS if runnable(name) is None]


def check_backend_report(info: dict, settings: dict) -> None:
    assert set(info) >= BACKEND_FIELDS
    assert info["dtype"] == "float32" and isinstance(info["compiled"], bool)
    assert set(info["figures"]) == FIGURES
    assert all(
        value > 0 for key, value in info["figures"].items() if key != "decode_overhead_fraction"
    )
    counts = {kind: len(values) for kind, values in info["seconds"].items()}
    # the matmul peak is sampled after each round of the six other measurements
    assert counts == {
        **dict.fromkeys(SECONDS, settings["repeats"]),
        "matmul": 6 * settings["repeats"],
    }


@pytest.mark.parametrize("name", BACKENDS)
def test_bench_runs_each_backend_end_to_end(name, one_torch_thread):
    reason = runnable(name)
    if reason:
        pytest.skip(reason)
    report = run_bench(BenchSettings(backends=[name], **FAST))
    assert list(report["backends"]) == [name]
    check_backend_report(report["backends"][name], report["settings"])
    assert report["ratios_mlx_over_torch"] == {}
    tokens = report["settings"]["steps"] * 8 * 32  # batch 8, block 32 of the tiny config
    seconds = sorted(report["backends"][name]["seconds"]["train"])
    assert report["backends"][name]["figures"]["train_tokens_per_s"] == pytest.approx(
        tokens / ((seconds[0] + seconds[1]) / 2)
    )


def test_cli_writes_json_with_every_field(tmp_path: Path):
    """The real command, all runnable backends interleaved in one run, JSON and table."""
    names = runnable_backends()
    if not names:
        pytest.skip("no backend can run here: install torch or mlx")
    out = tmp_path / "results" / "bench.json"
    args = ["bench", "--config", "tiny", "--steps", "1", "--warmup", "1", "--repeats", "1",
            "--gen-tokens", "4", "--device", "cpu", "--backends", ",".join(names),
            "--json", out]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "myllm", *map(str, args)], capture_output=True, text=True,
        timeout=120, env=ONE_THREAD_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "training tokens/s" in result.stdout and "MFU" in result.stdout
    report = json.loads(out.read_text())
    assert report["command"][1:] == list(map(str, args))
    assert {
        "os",
        "cpu",
        "cpu_count",
        "python",
        "numpy",
        "load_average_at_start",
        "load_average_at_end",
    } <= set(report["machine"])
    assert report["settings"]["dtype"] == "auto" and report["settings"]["config"] == "tiny"
    assert report["settings"]["model_config"]["d_model"] == 64
    assert "6*N" in report["flops"]["formula"] and report["flops"]["N"] == 103_872
    assert set(report["generation_paths"]) == {"generate_kv", "generate_no_kv", "generate_batched"}
    assert list(report["backends"]) == names
    assert markdown_table(report).splitlines()[2].startswith("| training tokens/s |")
    for info in report["backends"].values():
        check_backend_report(info, report["settings"])
    if "mlx" in names:
        assert "blas" in report["backends"]["mlx"] and report["backends"]["mlx"]["blas"]
        assert report["backends"]["mlx"]["versions"]["mlx"]
    if len(names) == 2:
        ratios = report["ratios_mlx_over_torch"]
        assert set(ratios) == FIGURES and ratios["decode_overhead_fraction"] is None
        figures = {name: report["backends"][name]["figures"] for name in names}
        assert ratios["train_tokens_per_s"] == pytest.approx(
            figures["mlx"]["train_tokens_per_s"] / figures["torch"]["train_tokens_per_s"]
        )
        assert "mlx/torch" in result.stdout


def test_flops_per_token_match_a_hand_count():
    """d_model 64, 2 layers, d_ff 256, vocab 65, T 32, counted parameter by parameter."""
    config = ModelConfig(vocab_size=65, d_model=64, n_heads=4, n_layers=2, max_seq_len=32)
    attention = 3 * 64 * 64 + (64 * 64 + 64)  # W_q, W_k, W_v; W_o and its bias
    feed_forward = (64 * 256 + 256) + (256 * 64 + 64)  # linear1, linear2 with biases
    layer = attention + feed_forward + 2 * (64 + 64)  # + ln1, ln2
    n = 2 * layer + (64 + 64) + 64 * 65  # + ln_final + lm_head matmul (tied)
    assert n == 103_872 == flop_parameter_count(config)
    assert model_flops_per_token(config, training=True) == 6 * n + 12 * 2 * 32 * 64 == 672_384
    assert model_flops_per_token(config, training=False) == 2 * n + 4 * 2 * 32 * 64 == 224_128


def test_flop_count_agrees_with_the_torch_model(one_torch_thread):
    """N = the model's parameters - the position embedding (the token embedding is the lm_head)."""
    reason = runnable("torch")
    if reason:
        pytest.skip(reason)
    from myllm_torch.model import GPTModel, count_parameters

    config = ModelConfig(vocab_size=65, d_model=48, n_heads=4, n_layers=3, max_seq_len=20)
    expected = count_parameters(GPTModel(config)) - config.max_seq_len * config.d_model
    assert flop_parameter_count(config) == expected


def test_torch_is_loaded_before_mlx_whatever_the_order_given():
    """myllm_mlx loads OpenBLAS globally: torch must come first to keep its own BLAS."""
    names = runnable_backends()
    if len(names) < 2:
        pytest.skip(f"needs both backends, runnable here: {names}")
    loaded, skipped = select_backends(["mlx", "torch", "mlx"])
    assert [name for name, _ in loaded] == ["torch", "mlx"] and skipped == {}


def test_presets_and_overrides():
    plan = resolve_plan(BenchSettings(config="baby", d_model=96, batch_size=4, steps=3))
    config = plan.model_config
    assert (config.d_model, config.n_layers, config.n_heads, config.max_seq_len) == (96, 4, 4, 64)
    assert (plan.batch_size, plan.steps, plan.repeats) == (4, 3, 3)
    default = resolve_plan(BenchSettings())
    assert (default.model_config.d_model, default.block_size, default.batch_size) == (384, 128, 16)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"backends": ["jax"]}, "unknown backend 'jax'"),
        ({"backends": []}, "--backends is empty"),
        ({"config": "huge"}, "unknown bench config 'huge'"),
        ({"repeats": 0}, "--repeats"),
        ({"warmup": -1}, "--warmup"),
        ({"n_heads": 5}, "not divisible by n_heads"),
    ],
)
def test_bad_input_is_a_user_error(settings, fragment):
    with pytest.raises(UserError, match=fragment):
        run_bench(BenchSettings(**settings))


def test_cli_bad_input_is_one_line_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "myllm", "bench", "--backends", "torch,jax"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown backend 'jax'" in result.stderr
