"""Bad input is refused before any work, in one line naming the flag, exit 2 (issue 12).

Flags, damaged checkpoints, inconsistent tokenizer.json files, data paths that are not files,
batches that cannot fit in memory and an unwritable TMPDIR: through the CLI's entry point
in-process (`run_cli`), and in a subprocess where the process start is the point (MLX reads
TMPDIR when it is imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.checkpoint.state import parameter_shapes
from myllm.config.settings import ModelConfig
from myllm.data.char_tokenizer import FORMAT, CharTokenizer
from myllm.data.tokenizers import load_tokenizer
from myllm.errors import UserError
from myllm.train.memory import (
    GIB,
    MemoryLimit,
    check_step_fits,
    estimate_step_memory,
    largest_batch_that_fits,
    parameter_count,
)
from tests.helpers import BACKENDS, CliResult, run_cli, sample_text, tiny_model_config

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
TINY = ["--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "16",
        "--batch-size", "8", "--device", "cpu"]  # fmt: skip
SUFFIXES = {"torch": ".pt", "mlx": ".safetensors"}


def myllm(*args: object) -> CliResult:
    """`myllm ARGS` through the CLI's entry point, in this process (helpers.run_cli)."""
    return run_cli(*args)


def myllm_process(*args: object, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "myllm", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def assert_one_line_refusal(result: CliResult | subprocess.CompletedProcess, *expected: str):
    """Exit 2, one line on stderr, no traceback, and the expected words in it."""
    message = result.stderr.strip()
    assert result.returncode == 2, message[-2000:]
    assert "\n" not in message and "Traceback" not in message, message
    for words in expected:
        assert words in message, message


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text(sample_text(4000), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One tiny checkpoint per backend, in its run directory (written in-process, no training)."""
    from myllm.backend.registry import load_backend
    from myllm.config.settings import TrainConfig

    root = tmp_path_factory.mktemp("trained")
    tokenizer = CharTokenizer.build_vocab(sample_text(4000))
    paths = {}
    for name in BACKENDS:
        config = tiny_model_config(vocab_size=tokenizer.vocab_size)
        trainer = load_backend(name).Trainer(config, TrainConfig(device="cpu"))
        x = np.zeros((2, 16), dtype=np.int32)
        trainer.train_step(x, x, 1e-3)  # optimizer moments exist: every tensor kind is written
        (root / name).mkdir()
        tokenizer.save(root / name / "tokenizer.json")
        paths[name] = root / name / f"checkpoint_last{SUFFIXES[name]}"
        write_checkpoint(paths[name], trainer.checkpoint())
    return paths


# --- flags, refused before the framework is imported ---

TRAIN_FLAGS = [
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--weight-decay", "inf"], "--weight-decay"),
    (["--beta2", "nan"], "--beta2"),
    (["--val-split", "nan"], "--val-split"),
    (["--dropout", "nan"], "--dropout"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**63)], "--seed"),
    (["--seed", str(2**70)], "--seed"),
    (["--save-interval", "0"], "--save-interval"),
    (["--save-minutes", "nan"], "--save-minutes"),
    (["--n-heads", "5"], "--n-heads"),
]


def test_bad_train_flags_are_refused_in_one_line(data, tmp_path):
    """Each fails at validation, before a backend is chosen, so torch alone stands for both."""
    for flags, flag in TRAIN_FLAGS:
        result = myllm("train", "--backend", "torch", "--data", data,
                       "--checkpoint-dir", tmp_path / "run", *TINY, *flags)  # fmt: skip
        assert_one_line_refusal(result, flag)
        assert not (tmp_path / "run").exists()  # refused before anything was written


def test_bad_generate_flags_are_refused_in_one_line(trained):
    """Checked before the checkpoint is read; the seeds on both backends' checkpoints."""
    cases = [
        ("torch", ["--temperature", "nan"], "temperature"),
        ("torch", ["--temperature", "inf"], "temperature"),
        ("torch", ["--temperature", "-1"], "temperature"),
        ("torch", ["--top-p", "nan"], "top_p"),
        ("torch", ["--seed", "-1"], "--seed"),
        ("mlx", ["--seed", "-1"], "--seed"),
        ("mlx", ["--seed", str(2**63)], "--seed"),
    ]
    for backend, flags, name in cases:
        result = myllm("generate", "--checkpoint", trained[backend], "--backend", backend, *flags)
        assert_one_line_refusal(result, name)


def test_set_temperature_nan_in_the_repl_is_refused():
    from myllm.generate.repl import apply_setting
    from myllm.generate.sampling import SamplingSettings

    settings = SamplingSettings()
    for line, words in [
        ("/set temperature nan", "temperature nan is not a finite number"),
        ("/set temperature inf", "temperature inf is not a finite number"),
        ("/set top_p nan", "top_p nan is outside"),
    ]:
        assert words in apply_setting(settings, line)
    assert settings == SamplingSettings()  # unchanged


def test_error_messages_name_only_flags_of_the_command(data, tmp_path):
    """train has no --skip-unknown, --tokenizer or --mirror; bench has no --max-seq-len."""
    run = tmp_path / "run"
    run.mkdir()
    CharTokenizer.build_vocab("abc").save(run / "tokenizer.json")
    model_config = tiny_model_config(vocab_size=3)
    write_checkpoint(
        run / "checkpoint_last.safetensors",
        _checkpoint_with_random_weights(model_config),
    )
    result = myllm("train", "--backend", "mlx", "--data", data, "--block-size", 16,
                   "--resume", run / "checkpoint_last.safetensors")  # fmt: skip
    assert_one_line_refusal(result, "--data")
    assert "--skip-unknown" not in result.stderr
    (run / "tokenizer.json").unlink()
    result = myllm("train", "--backend", "mlx", "--resume", run / "checkpoint_last.safetensors")
    assert_one_line_refusal(result, "tokenizer.json")
    assert "--tokenizer" not in result.stderr
    result = myllm("bench", "--backends", "torch", "--block-size", "0")
    assert result.returncode == 2 and "--max-seq-len" not in result.stderr


def _checkpoint_with_random_weights(config: ModelConfig):
    from myllm.checkpoint.state import Checkpoint

    rng = np.random.default_rng(0)
    weights = {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in parameter_shapes(config).items()
    }
    return Checkpoint(config, weights)


@pytest.mark.parametrize("kind", ["directory", "fifo", "devnull", "missing"], ids=lambda kind: kind)
def test_data_that_is_not_a_regular_file_is_reported_as_what_it_is(kind, tmp_path):
    from myllm.data.text_file import check_data_file

    path = {"directory": tmp_path, "devnull": Path("/dev/null")}.get(kind, tmp_path / "x")
    if kind == "fifo":
        os.mkfifo(path)
    expected = {
        "directory": "is a directory",
        "fifo": "is not a regular file",
        "devnull": "is not a regular file",
        "missing": "not found",
    }[kind]
    with pytest.raises(UserError, match=expected):
        check_data_file(path)


def test_data_directory_on_the_cli_exits_2(tmp_path):
    result = myllm("train", "--data", tmp_path, "--checkpoint-dir", tmp_path / "run", *TINY)
    assert_one_line_refusal(result, "is a directory", "--data")


# --- memory ---


def test_parameter_count_matches_the_canonical_shapes():
    for config in (tiny_model_config(), ModelConfig(vocab_size=65)):
        shapes = parameter_shapes(config).values()
        assert parameter_count(config) == sum(int(np.prod(shape)) for shape in shapes)


def test_the_memory_estimate_grows_with_the_batch_and_refuses_past_the_limit():
    config = ModelConfig(vocab_size=65)  # the default model
    small = estimate_step_memory(config, 64, 128)
    assert small.weights_and_optimizer == 16 * parameter_count(config)
    assert estimate_step_memory(config, 128, 128).activations == 2 * small.activations
    one_gib = MemoryLimit(GIB, "of physical memory")
    check_step_fits(config, 64, 128, MemoryLimit(16 * GIB, "available"))  # the default run fits
    with pytest.raises(UserError, match=r"needs at least [\d,.]+ GiB .* has 1\.0 GiB of physical"):
        check_step_fits(config, 10**6, 128, one_gib)
    best = largest_batch_that_fits(config, 128, GIB)
    check_step_fits(config, best, 128, one_gib)
    with pytest.raises(UserError, match=f"lower --batch-size to at most {best} "):
        check_step_fits(config, best + 1, 128, one_gib)
    check_step_fits(config, 10**9, 128, limit=None)  # unknown limit: nothing checked
    tiny = MemoryLimit(2**20, "available")  # the weights alone do not fit: no "at most 0"
    with pytest.raises(UserError, match="even one sequence does not fit; use a smaller model"):
        check_step_fits(config, 1, 128, tiny)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_too_big_for_the_machine_is_refused_before_allocating(backend, data, tmp_path):
    result = myllm("train", "--backend", backend, "--data", data, "--checkpoint-dir",
                   tmp_path / "run", "--device", "cpu", "--batch-size", 10**9)  # fmt: skip
    assert_one_line_refusal(result, "GiB", "this process has", "--batch-size")


# --- checkpoints ---


@pytest.mark.parametrize("backend", BACKENDS)
def test_flipped_tensor_bytes_are_refused_naming_the_tensor(backend, trained, tmp_path):
    original = trained[backend]
    checkpoint = read_checkpoint(original)
    target = checkpoint.weights["blocks.1.feed_forward.linear1.weight"]
    raw = original.read_bytes()
    offset = raw.find(target.tobytes())
    assert offset > 0
    damaged = bytearray(raw)
    damaged[offset + target.nbytes // 2] ^= 0x40  # one bit of one float
    (tmp_path / "tokenizer.json").write_bytes((original.parent / "tokenizer.json").read_bytes())
    path = tmp_path / original.name
    path.write_bytes(bytes(damaged))
    with pytest.raises(UserError, match=r"corrupt checkpoint .*blocks\.1\.feed_forward\.linear1"):
        read_checkpoint(path)
    result = myllm("generate", "--checkpoint", path, "--max-new-tokens", 5)
    assert_one_line_refusal(result, "corrupt checkpoint", "blocks.1.feed_forward.linear1.weight")


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoints_without_checksums_still_load(backend, trained, tmp_path):
    """Files written before checksums existed: the same files with the checksum entry removed."""
    source, path = trained[backend], tmp_path / trained[backend].name
    if backend == "torch":
        import torch

        payload = torch.load(source, weights_only=True)
        del payload["myllm_checksums"]
        torch.save(payload, path)
    else:
        from safetensors import safe_open
        from safetensors.numpy import save_file

        with safe_open(str(source), framework="numpy") as handle:
            meta = json.loads(handle.metadata()["myllm"])
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        del meta["checksums"]
        save_file(tensors, str(path), metadata={"myllm": json.dumps(meta)})
    old, new = read_checkpoint(path), read_checkpoint(source)
    assert old.checksums is None and new.checksums is not None
    np.testing.assert_array_equal(  # float32, exact: the same bytes
        old.weights["token_embedding.weight"], new.weights["token_embedding.weight"]
    )


# --- tokenizer.json ---

TOKENIZER_CASES = {
    "wrong format": ({"format": "other", "vocab_size": 2, "chars": ["a", "b"]}, "format"),
    "no format": ({"vocab_size": 2, "chars": ["a", "b"]}, "format"),
    "wrong vocab_size": ({"format": FORMAT, "vocab_size": 3, "chars": ["a", "b"]}, "vocab_size"),
    "two characters": ({"format": FORMAT, "vocab_size": 2, "chars": ["a", "bc"]}, "entry 1"),
    "empty entry": ({"format": FORMAT, "vocab_size": 2, "chars": ["a", ""]}, "entry 1"),
    "not a string": ({"format": FORMAT, "vocab_size": 2, "chars": ["a", 7]}, "entry 1"),
    "repeats": ({"format": FORMAT, "vocab_size": 3, "chars": ["a", "b", "a"]}, "repeated"),
    "no chars": ({"format": FORMAT, "vocab_size": 0, "chars": []}, "chars"),
    "a list": (["a", "b"], "not an object"),
}


@pytest.mark.parametrize("case", TOKENIZER_CASES, ids=str)
def test_an_inconsistent_tokenizer_json_is_refused_naming_the_file(case, tmp_path):
    payload, problem = TOKENIZER_CASES[case]
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(UserError, match=problem) as refused:
        load_tokenizer(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_a_tokenizer_mismatch_is_refused_on_the_cli(trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    path = run / trained["torch"].name
    path.write_bytes(trained["torch"].read_bytes())
    chars = load_tokenizer(trained["torch"].parent / "tokenizer.json").vocabulary
    payload = {"format": FORMAT, "vocab_size": len(chars) + 1, "chars": chars}
    (run / "tokenizer.json").write_text(json.dumps(payload), encoding="utf-8")
    result = myllm("generate", "--checkpoint", path, "--max-new-tokens", 5)
    assert_one_line_refusal(result, "vocab_size", str(run / "tokenizer.json"))


def test_convert_refuses_a_folder_with_another_tokenizer(trained, tmp_path):
    CharTokenizer.build_vocab("xyz").save(tmp_path / "tokenizer.json")
    destination = tmp_path / "converted.safetensors"
    result = myllm("convert", trained["torch"], destination)
    assert_one_line_refusal(result, "another vocabulary")
    assert not destination.exists()
    same = tmp_path / "same"
    same.mkdir()
    (same / "tokenizer.json").write_bytes((trained["torch"].parent / "tokenizer.json").read_bytes())
    assert myllm("convert", trained["torch"], same / "converted.safetensors").returncode == 0


# --- MLX's kernel cache ---


@pytest.mark.parametrize("tmpdir", ["missing", "a file"])
def test_mlx_with_an_unusable_tmpdir_falls_back_and_says_so(tmpdir, data, tmp_path):
    unusable = tmp_path / "not-a-directory"
    if tmpdir == "a file":
        unusable.write_text("")
    env = {**ENV, "TMPDIR": str(unusable)}
    result = myllm_process("train", "--backend", "mlx", "--data", data, "--checkpoint-dir",
                           tmp_path / "run", *TINY, "--max-steps", 2, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"TMPDIR={unusable} is not a writable directory" in result.stderr
