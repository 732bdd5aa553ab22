"""Helpers shared by the tests: texts, tiny configs, runs, checkpoints, CLI results."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from myllm.backend.registry import is_installed
from myllm.checkpoint.io import read_checkpoint
from myllm.checkpoint.state import Checkpoint, OptimizerState, TrainingState, parameter_shapes
from myllm.config.settings import ModelConfig, ModelSettings, TrainConfig
from myllm.data.char_tokenizer import CharTokenizer
from myllm.data.corpus import Corpus
from myllm.train.resume import read_resume
from myllm.train.setup import run_training

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKENDS = ["torch", "mlx"]
REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {"d_model": 32, "n_heads": 4, "n_layers": 2, "dropout": 0.0}
DROPOUT_MODEL = ModelSettings(**{**TINY_MODEL, "dropout": 0.1})  # resume must draw the same masks
# 700 characters, 630 for training: ceil((630 - 16) / 32) = 20 steps per epoch, 40 in all.
STEPS_PER_EPOCH, TOTAL_STEPS = 20, 40
TINY_CLI = ["--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "16",
            "--batch-size", "8", "--dropout", "0.1", "--device", "cpu",
            "--dtype", "float32"]  # fmt: skip  # float32: the reference (auto is bf16 on AMX CPUs)
# Tiny models run fastest on one thread; on a shared 2-core machine two threads spin on each other.
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def sample_text(characters: int = 20_000) -> str:
    """The start of Tiny Shakespeare from the offline mirror, else a deterministic stand-in."""
    source = SHARED_DATA / "tinyshakespeare.txt"
    if source.is_file():
        return source.read_text(encoding="utf-8")[:characters]
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "ROMEO:", "JULIET:\n"]
    return " ".join(rng.choice(words, size=characters // 4))[:characters]


def sample_tokens(vocab_size: int, characters: int = 20_000) -> np.ndarray:
    """sample_text as int32 token ids of its sorted characters (at most vocab_size of them)."""
    text = sample_text(characters)
    chars = sorted(set(text))
    assert len(chars) <= vocab_size
    return np.array([chars.index(ch) for ch in text], dtype=np.int32)


def text_corpus(text: str, val_split: float = 0.1) -> Corpus:
    """`text` encoded in memory as the reference does (its sorted characters, split at
    int(len * (1 - val_split))): the truth the token cache is checked against; a quick corpus."""
    tokenizer = CharTokenizer.build_vocab(text)
    tokens = np.array(tokenizer.encode(text), dtype=np.int32)
    return Corpus(tokenizer, tokens, int(len(text) * (1 - val_split)))


def tiny_model_config(vocab_size: int = 65, **overrides) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, max_seq_len=16, **{**TINY_MODEL, **overrides})


def tiny_train_config(data: Path, checkpoint_dir: Path, **overrides) -> TrainConfig:
    values = {
        "data": str(data), "checkpoint_dir": str(checkpoint_dir), "batch_size": 8,
        "block_size": 16, "lr": 3e-3, "log_interval": 5, "eval_iters": 4, "seed": 7,
        "device": "cpu", "dtype": "float32",  # the reference: auto is bfloat16 on some CPUs
    }  # fmt: skip
    return TrainConfig(**{**values, **overrides})


def logits_of(backend, model, ids: np.ndarray) -> np.ndarray:
    """Full logits [B, T, V] of `model` for int ids [B, T], as float32 numpy, dropout off."""
    if backend.name == "torch":
        import torch

        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            return model(torch.from_numpy(ids.astype(np.int64)).to(device)).cpu().numpy()
    import mlx.core as mx

    model.eval()
    return np.array(model(mx.array(ids.astype(np.int32))))


# --- runs ---


def two_epoch_config(data: Path, directory: Path, **overrides) -> TrainConfig:
    values = {"epochs": 2, "batch_size": 32, "log_interval": 1, "eval_iters": 2, **overrides}
    return tiny_train_config(data, directory, **values)


def signal_at_step(monkeypatch, trainer_class, call: int, signum: int) -> None:
    """Send this process `signum` from inside the `call`-th train_step, as a user would."""
    original = trainer_class.train_step
    calls = itertools.count(1)

    def train_step(self, x, y, lr, **kwargs):
        result = original(self, x, y, lr, **kwargs)
        if next(calls) == call:
            os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(trainer_class, "train_step", train_step)


def resume_from(backend, checkpoint: Path, **overrides):
    """Resume as `myllm train --resume` does: the stored config, the model from the checkpoint."""
    resume, config = read_resume(checkpoint, overrides)
    return run_training(backend.name, config, ModelSettings(), resume)


def metric_records(directory: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields, which differ from run to run."""
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    timing = {"tokens_per_second", "elapsed_s"}
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


def train_losses(directory: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["train_loss"]) for r in metric_records(directory) if "val_loss" not in r]


def assert_checkpoints_identical(first: Checkpoint, second: Checkpoint) -> None:
    """float32 tensors bit for bit (weights, AdamW moments, RNG state), the same training state
    and float16 loss scale."""
    assert first.training == second.training
    assert first.loss_scale == second.loss_scale
    assert (first.optimizer is None) == (second.optimizer is None)  # None: no step applied yet
    if first.optimizer is not None:
        assert first.optimizer.step == second.optimizer.step
    for name, array in first.weights.items():
        np.testing.assert_array_equal(array, second.weights[name], strict=True)
        if first.optimizer is not None:
            np.testing.assert_array_equal(
                first.optimizer.exp_avg[name], second.optimizer.exp_avg[name]
            )
            np.testing.assert_array_equal(
                first.optimizer.exp_avg_sq[name], second.optimizer.exp_avg_sq[name]
            )
    assert first.rng.keys() == second.rng.keys()
    for name, state in first.rng.items():
        np.testing.assert_array_equal(state, second.rng[name])


def all_weights_finite(directory: Path, suffix: str) -> bool:
    return all(
        np.isfinite(array).all()
        for path in directory.glob(f"*{suffix}")
        for array in read_checkpoint(path).weights.values()
    )


def temp_files(directory: Path) -> list[Path]:
    """Hidden files: the temporary files of saves that did not finish (not the token cache)."""
    hidden = (path for path in directory.iterdir() if path.name.startswith("."))
    return sorted(path for path in hidden if path.name != ".myllm_cache")


# --- checkpoints ---


def constant_checkpoint(value: int, d_model: int = 8, n_layers: int = 1) -> Checkpoint:
    """A checkpoint whose every tensor holds `value` (training.step too): a mix of two shows."""
    config = ModelConfig(
        vocab_size=65, d_model=d_model, n_heads=2, n_layers=n_layers, max_seq_len=16
    )
    shapes = parameter_shapes(config)

    def tensors():
        return {name: np.full(shape, value, np.float32) for name, shape in shapes.items()}

    return Checkpoint(
        config,
        tensors(),
        TrainingState(step=value),
        train_config={"lr": 1e-3},
        optimizer=OptimizerState(step=value, exp_avg=tensors(), exp_avg_sq=tensors()),
        rng={"torch": np.full(5056, value, np.uint8)},
    )


class RunsCode:
    """Unpickling this calls os.system: a weights_only load must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- the CLI ---


@dataclass
class CliResult:
    """What a `myllm` command left: its exit code and output, named like a subprocess's."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: object, input: str = "") -> CliResult:
    """`myllm ARGS` in this process, through `main` (the console script's own entry point, so
    its one-line errors and exit codes are the real ones), without a subprocess's start-up and
    framework imports. A subprocess stays the test where the process itself is the point."""
    from myllm.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    argv, stdin = sys.argv, sys.stdin
    sys.argv, sys.stdin = ["myllm", *map(str, args)], io.StringIO(input)
    code = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as exit_info:  # main() always ends in sys.exit(code)
        code = 0 if exit_info.code is None else exit_info.code
    finally:
        sys.argv, sys.stdin = argv, stdin
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


def assert_user_error(result: CliResult | subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, no traceback, one line on stderr that names the problem."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- data parallelism: 2 local ranks ---

# 100 characters at val_split 0.2: 80 training tokens, 64 windows of 16 -> batches 7 x 9 + 1.
DISTRIBUTED_TEXT_LENGTH = 100
DISTRIBUTED_SETTINGS = {
    "max_steps": 20, "batch_size": 7, "block_size": 16, "val_split": 0.2, "lr": 3e-3,
    "log_interval": 1, "seed": 7, "device": "cpu", "dtype": "float32",
}  # fmt: skip
DISTRIBUTED_TOLERANCE = 1e-5  # float32 losses; the ranks sum their shards in a different order


def free_port_pair() -> int:
    """A port p with p and p + 1 free: the ring backend listens on one port per rank."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket() as second:
                second.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def launcher(backend: str) -> list[str]:
    """The command that starts 2 local ranks of `python -m ...` for `backend`."""
    if backend == "torch":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2"]  # fmt: skip
    mlx_launch = Path(sys.executable).parent / "mlx.launch"
    # "--" keeps mlx.launch from taking the CLI's own --backend flag for its own.
    return [str(mlx_launch), "-n", "2", "--backend", "ring", "--hosts", "127.0.0.1",
            "--starting-port", str(free_port_pair()), "--python", sys.executable, "--"]  # fmt: skip


def train_on_two_ranks(backend: str, data: Path, checkpoint_dir: Path, *flags: str) -> None:
    """`myllm train` on 2 local ranks (DISTRIBUTED_SETTINGS, TINY_MODEL, then `flags`); fails on
    a non-zero exit or a traceback. Skips when the backend or its launcher is not installed."""
    import pytest

    if not is_installed(backend):
        pytest.skip(f"{backend} is not installed")
    if backend == "mlx" and not (Path(sys.executable).parent / "mlx.launch").is_file():
        pytest.skip("mlx.launch is not installed beside this Python")
    command = [*launcher(backend), "-m", "myllm", "train", "--backend", backend,
               "--data", str(data), "--checkpoint-dir", str(checkpoint_dir),
               *cli_flags(DISTRIBUTED_SETTINGS), *cli_flags(TINY_MODEL), *flags]  # fmt: skip
    launched = subprocess.run(command, capture_output=True, text=True, cwd=data.parent, timeout=180)
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0 and "Traceback" not in output, output


def cli_flags(settings: dict) -> list[str]:
    flags = []
    for name, value in settings.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def losses_by_step(run_dir: Path) -> dict[int, float]:
    """step -> logged training loss, failing on a step logged twice (a second writer)."""
    losses: dict[int, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "val_loss" not in record:
            assert record["step"] not in losses, f"step {record['step']} logged twice"
            losses[record["step"]] = record["train_loss"]
    return losses


def assert_losses_close(first: dict[int, float], second: dict[int, float]) -> None:
    assert first.keys() == second.keys()
    worst = max(abs(first[step] - second[step]) for step in first)
    assert worst <= DISTRIBUTED_TOLERANCE, f"largest per-step loss difference {worst}"
