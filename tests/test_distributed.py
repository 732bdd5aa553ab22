"""Data parallelism: 2 local processes (torchrun / mlx.launch) train exactly like 1 process.

The text is cut so that uneven shards occur: a global batch of 7 is split 4 + 3, and each epoch
ends on a batch of 1 window, which leaves rank 1 an empty shard. The 2-process losses must still
equal the 1-process losses, rank 1 must write nothing, and 1 process must resume the 2-process run.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from myllm.backends import is_installed
from myllm.config import ModelSettings, TrainConfig
from myllm.resume import read_resume
from myllm.training import run_training
from tests.helpers import BACKENDS, TINY_MODEL, sample_text

# 100 characters at val_split 0.2: 80 training tokens, 64 windows of 16 -> batches 7 x 9 + 1.
TEXT_LENGTH = 100
STEPS, RESUMED_STEPS = 20, 30
SETTINGS = {
    "max_steps": STEPS, "batch_size": 7, "block_size": 16, "val_split": 0.2, "lr": 3e-3,
    "log_interval": 1, "seed": 7, "device": "cpu",
}  # fmt: skip
TOLERANCE = 1e-5  # float32 losses; the ranks sum their shards in a different order


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


def cli_flags(settings: dict) -> list[str]:
    flags = []
    for name, value in settings.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def train_losses(run_dir: Path) -> dict[int, float]:
    """step -> logged training loss, failing on a step logged twice (a second writer)."""
    losses: dict[int, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "val_loss" not in record:
            assert record["step"] not in losses, f"step {record['step']} logged twice"
            losses[record["step"]] = record["train_loss"]
    return losses


def val_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record["val_loss"] for record in map(json.loads, lines) if "val_loss" in record]


def assert_close(first: dict[int, float], second: dict[int, float]) -> None:
    assert first.keys() == second.keys()
    worst = max(abs(first[step] - second[step]) for step in first)
    assert worst <= TOLERANCE, f"largest per-step loss difference {worst}"


def train_in_process(backend: str, data: Path, run_dir: Path, resume: Path | None = None):
    settings = {**SETTINGS, "max_steps": RESUMED_STEPS} if resume else SETTINGS
    config = TrainConfig(data=str(data), checkpoint_dir=str(run_dir), **settings)
    if resume is None:
        result = run_training(backend, config, ModelSettings(**TINY_MODEL))
    else:
        resume_point, resumed_config = read_resume(resume, config.to_dict())
        result = run_training(backend, resumed_config, ModelSettings(), resume_point)
    assert result.exit_code == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_train_like_one_and_one_resumes(backend, tmp_path):
    if not is_installed(backend):
        pytest.skip(f"{backend} is not installed")
    if backend == "mlx" and not (Path(sys.executable).parent / "mlx.launch").is_file():
        pytest.skip("mlx.launch is not installed beside this Python")
    data = tmp_path / "input.txt"
    data.write_text(sample_text()[:TEXT_LENGTH], encoding="utf-8")
    two, one = tmp_path / "two", tmp_path / "one"

    command = [*launcher(backend), "-m", "myllm", "train", "--backend", backend,
               "--data", str(data), "--checkpoint-dir", str(two), *cli_flags(SETTINGS),
               *cli_flags(TINY_MODEL)]  # fmt: skip
    launched = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=180)
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0 and "Traceback" not in output, output
    train_in_process(backend, data, one)

    # Same per-step losses as 1 process, written once, by rank 0 alone.
    assert_close(train_losses(two), train_losses(one))
    assert val_losses(two) == pytest.approx(val_losses(one), abs=TOLERANCE)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    # the token cache beside the text is shared by the ranks and by the 1-process run
    assert sorted(p.name for p in tmp_path.iterdir()) == [".myllm_cache", "input.txt", "one", "two"]
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    suffix = ".pt" if backend == "torch" else ".safetensors"
    assert (two / f"checkpoint_epoch_2{suffix}").is_file()

    # 1 process continues the 2-process run as it continues its own.
    train_in_process(backend, data, two, resume=two / f"checkpoint_last{suffix}")
    train_in_process(backend, data, one, resume=one / f"checkpoint_last{suffix}")
    resumed = {step: loss for step, loss in train_losses(two).items() if step > STEPS}
    assert sorted(resumed) == list(range(STEPS + 1, RESUMED_STEPS + 1))
    assert_close(resumed, {s: v for s, v in train_losses(one).items() if s > STEPS})
