"""The CLI end to end: a real run in a subprocess, generation from it (once in a subprocess, the
rest in-process through the same entry point), and every bad input -> one line, exit 2."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ONE_THREAD_ENV, assert_user_error, run_cli, sample_text

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread is fastest
TINY = ["--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "16",
        "--batch-size", "8", "--dropout", "0", "--device", "cpu"]  # fmt: skip


def myllm(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "myllm", *map(str, args)],
        capture_output=True,
        text=True,
        env=ONE_THREAD_ENV,
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny real run through the CLI, shared by the tests that need a checkpoint."""
    root = tmp_path_factory.mktemp("cli")
    (root / "input.txt").write_text(sample_text(), encoding="utf-8")
    result = myllm("train", "--backend", "torch", "--data", root / "input.txt", "--checkpoint-dir",
                   root / "run", "--max-steps", "40", "--eval-interval", "20", "--eval-iters", "2",
                   "--lr", "3e-3", *TINY)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "val loss" in result.stderr and "myllm plot" in result.stderr
    return root / "run"


def test_train_then_generate_greedy_is_reproducible(trained_run):
    args = ["generate", "--checkpoint", trained_run / "best_model.pt", "--prompt", "ROMEO:",
            "--max-new-tokens", "40", "--temperature", "0"]  # fmt: skip
    first, second = myllm(*args), run_cli(*args)  # a fresh process, then this one
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("ROMEO:") and len(first.stdout) == len("ROMEO:") + 40 + 1
    assert first.stdout == second.stdout


def test_seeded_sampling_is_reproducible(trained_run):
    args = ["generate", "--checkpoint", trained_run / "checkpoint_last.pt", "--max-new-tokens",
            "60", "--seed", "3", "--top-k", "20", "--top-p", "0.9"]  # fmt: skip
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0 and len(first.stdout) == 60 + 1, first.stderr
    assert first.stdout == second.stdout


def test_underscore_flags_are_accepted(tmp_path):
    (tmp_path / "in.txt").write_text(sample_text(3000), encoding="utf-8")
    flags = ["--checkpoint_dir", tmp_path / "r", "--max_steps", "2", "--batch_size", "4",
             "--block_size", "8", "--d_model", "16", "--n_heads", "2", "--n_layers", "1",
             "--val_split", "0.2", "--eval_iters", "1"]  # fmt: skip
    result = run_cli("train", "--data", tmp_path / "in.txt", *flags)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "checkpoint_last.pt").is_file()


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def bad_train_cases(tmp: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "latin1.txt").write_bytes("café au lait".encode("latin-1") * 20)
    (tmp / "short.txt").write_text("tiny", encoding="utf-8")
    (tmp / "ok.txt").write_text(sample_text(2000), encoding="utf-8")
    return [
        (["--data", tmp / "missing.txt"], ("data file", "not found", "--data")),
        (["--data", tmp / "empty.txt"], ("is empty",)),
        (["--data", tmp / "latin1.txt"], ("not UTF-8",)),
        (["--data", tmp / "short.txt"], ("fewer than block_size + 1", "--block-size")),
        (["--data", tmp / "ok.txt", "--val-split", "0.001"], ("validation split", "--val-split")),
        (["--data", tmp / "ok.txt", "--d-model", "30", "--n-heads", "4"], ("not divisible",)),
        (["--data", tmp / "ok.txt", "--batch-size", "0"], ("batch_size must be a positive",)),
        (["--data", tmp / "ok.txt", "--backend", "jax"], ("unknown backend 'jax'", "torch")),
        (["--data", tmp / "ok.txt", "--device", "tpu"], ("unknown device 'tpu'",)),
        (["--data", tmp / "ok.txt", "--resume", tmp / "nope.pt"], ("not found",)),
    ]


def test_bad_training_inputs_exit_2_and_leave_files_alone(trained_run, tmp_path):
    before = digest(trained_run)
    for args, fragments in bad_train_cases(tmp_path):
        # --overwrite: past the run-directory guard, to the input it checks; nothing is removed
        # before every input has been checked.
        args = (
            [*args, "--checkpoint-dir", trained_run, "--overwrite"]
            if "--resume" not in args
            else args
        )
        defaults = ["--block-size", "16", "--max-steps", "1", "--device", "cpu"]
        assert_user_error(run_cli("train", *defaults, *args), *fragments)
    assert digest(trained_run) == before


def test_bad_generation_inputs_exit_2(trained_run, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((trained_run / "best_model.pt").read_bytes()[:5000])
    other_vocab = tmp_path / "tokenizer.json"
    other_vocab.write_text(
        '{"format": "myllm.char_tokenizer", "vocab_size": 2, "chars": ["a", "b"]}'
    )
    best = trained_run / "best_model.pt"
    cases = [
        (["--checkpoint", tmp_path / "missing.pt"], ("not found",)),
        (["--checkpoint", corrupt, "--tokenizer", trained_run / "tokenizer.json"],
         ("could not be read",)),
        (["--checkpoint", tmp_path / "model.bin"], ("unknown checkpoint format",)),
        (["--checkpoint", best, "--tokenizer", other_vocab], ("tokenizer has 2 characters",)),
        (["--checkpoint", best, "--prompt", "Hello ☃"], ("not in the vocabulary", "'☃'",
                                                        "--skip-unknown")),
        (["--checkpoint", best, "--temperature", "-1"], ("temperature",)),
        (["--checkpoint", best, "--backend", "jax"], ("unknown backend",)),
    ]  # fmt: skip
    for args, fragments in cases:
        assert_user_error(run_cli("generate", "--max-new-tokens", "5", *args), *fragments)


def test_skip_unknown_drops_characters(trained_run):
    result = run_cli("generate", "--checkpoint", trained_run / "best_model.pt", "--prompt", "A☃",
                     "--skip-unknown", "--max-new-tokens", "5", "--temperature", "0")  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_interactive_repl_changes_settings(trained_run):
    script = "/set temperature 0\n/set max_new_tokens 12\n/settings\nROMEO:\n/set top_p 7\n/quit\n"
    result = subprocess.run(
        [sys.executable, "-m", "myllm", "generate", "--checkpoint",
         str(trained_run / "best_model.pt"), "--interactive"],
        input=script, capture_output=True, text=True, env=ONE_THREAD_ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "temperature=0.0" in result.stdout and "max_new_tokens=12" in result.stdout
    assert "top_p 7.0 is outside (0, 1]" in result.stdout
