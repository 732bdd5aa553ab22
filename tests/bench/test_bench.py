"""`myllm bench`: every backend end to end on the tiny config, the FLOP count, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    run_matrix,
    select_backends,
)
from myllm.cli import main
from myllm.config.settings import ModelConfig
from myllm.errors import UserError
from tests.helpers import BACKENDS

FIGURES = {key for _, key, _ in ROWS}
BACKEND_FIELDS = {"device", "gpu", "versions", "blas", "dtype", "dtype_reason", "decode_dtype",
                  "compiled", "memory_source", "rss_source", "matmuls_per_repeat", "figures",
                  "seconds", "process_id"}  # fmt: skip
SECONDS = {"train", "forward", "generate_kv", "generate_no_kv", "generate_batched", "decode_step",
           "model_step", "matmul"}  # fmt: skip
FAST = {"config": "tiny", "steps": 2, "warmup": 1, "repeats": 2, "gen_tokens": 8,
        "device": "cpu", "matmul_size": 128}  # fmt: skip


# The tests check the plumbing, not the speed: one thread keeps them fast on a shared CPU, where two
# OpenMP threads stall each other whenever another process holds one of the cores.
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def one_thread_workers(monkeypatch):
    """The bench's worker processes inherit the environment: one OpenMP thread each."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


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
    assert info["dtype"] in ("float32", "bfloat16") and isinstance(info["compiled"], bool)
    assert info["dtype_reason"].startswith("auto: ") and info["decode_dtype"] == "float32"
    assert info["process_id"] != os.getpid()  # measured in a worker process of its own
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


def test_cli_writes_json_with_every_field():
    """The real command, all runnable backends interleaved in one run: JSON on stdout (--json -),
    the table on stderr."""
    names = runnable_backends()
    if not names:
        pytest.skip("no backend can run here: install torch or mlx")
    args = ["bench", "--config", "tiny", "--steps", "1", "--warmup", "1", "--repeats", "1",
            "--gen-tokens", "4", "--device", "cpu", "--backends", ",".join(names),
            "--json", "-"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "myllm", *map(str, args)], capture_output=True, text=True,
        timeout=120, env=ONE_THREAD_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "training tokens/s" in result.stderr and "MFU" in result.stderr
    report = json.loads(result.stdout)
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
        assert "mlx/torch" in result.stderr


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


def test_backends_are_selected_once_in_a_fixed_order_without_importing_them():
    names = runnable_backends()
    if len(names) < 2:
        pytest.skip(f"needs both backends, runnable here: {names}")
    assert select_backends(["mlx", "torch", "mlx"]) == (["torch", "mlx"], {})


def test_each_backend_and_cell_runs_end_to_end_in_its_own_process(one_thread_workers):
    """Two --dropout cells x the runnable backends: one worker process each, none of them this
    one; every figure there, training tokens/s the median of its repeats."""
    names = runnable_backends()
    if not names:
        pytest.skip("no backend can run here: install torch or mlx")
    cells = [BenchSettings(**FAST, backends=names, dropout=d) for d in (0.1, 0)]
    reports = run_matrix(cells)
    ids = [info["process_id"] for report in reports for info in report["backends"].values()]
    assert len(ids) == 2 * len(names) == len(set(ids)) and os.getpid() not in ids
    dropouts = [report["settings"]["model_config"]["dropout"] for report in reports]
    assert dropouts == [0.1, 0.0]
    tokens = reports[0]["settings"]["steps"] * 8 * 32  # batch 8, block 32 of the tiny config
    for report in reports:
        assert list(report["backends"]) == names
        for info in report["backends"].values():
            check_backend_report(info, report["settings"])
            seconds = sorted(info["seconds"]["train"])
            assert info["figures"]["train_tokens_per_s"] == pytest.approx(
                tokens / ((seconds[0] + seconds[1]) / 2)
            )


@pytest.mark.parametrize(
    ("target", "fragment"),
    [("folder", "is a directory"), ("file/bench.json", "is a file, not a folder")],
)
def test_an_unwritable_json_path_is_refused_before_the_run(
    tmp_path, target, fragment, monkeypatch, capsys
):
    import myllm.bench

    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("mine\n")
    monkeypatch.setattr(myllm.bench, "run_matrix", lambda *a, **k: pytest.fail("it ran"))
    monkeypatch.setattr(sys, "argv", ["myllm", "bench", "--json", str(tmp_path / target)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    message = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and fragment in message and len(message.splitlines()) == 1
    assert (tmp_path / "file").read_text() == "mine\n"


def test_json_to_a_new_folder_writes_the_file(tmp_path):
    from myllm.paths import write_json_output

    out = tmp_path / "results" / "bench.json"
    write_json_output(out, {"backends": {}})
    assert json.loads(out.read_text()) == {"backends": {}}


def test_dtype_compile_and_dropout_lists_make_every_cell():
    from myllm.cli.bench import matrix_cells

    cells = matrix_cells("float32,bfloat16", "off", "0.1, 0")
    assert [(c["dtype"], c["dropout"]) for c in cells] == [
        ("float32", 0.1), ("float32", 0.0), ("bfloat16", 0.1), ("bfloat16", 0.0)
    ]  # fmt: skip
    with pytest.raises(UserError, match="--dropout 'half' is not a number"):
        matrix_cells("auto", "auto", "half")
    with pytest.raises(UserError, match="dropout"):
        resolve_plan(BenchSettings(dropout=1.5))


def test_the_plot_of_a_matrix_has_every_cell():
    from myllm.cli.bench import plotted

    cells = [BenchSettings(dtype=d) for d in ("float32", "bfloat16")]
    reports = [{"machine": {}, "backends": {"torch": {"figures": {"train_tokens_per_s": r}}}}
               for r in (1.0, 2.0)]  # fmt: skip
    backends = plotted(reports, cells)["backends"]
    assert list(backends) == [
        "torch (dtype float32, compile auto, dropout model's)",
        "torch (dtype bfloat16, compile auto, dropout model's)",
    ]
    assert backends[list(backends)[1]]["figures"]["train_tokens_per_s"] == 2.0


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
