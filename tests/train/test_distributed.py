"""Data parallelism: 2 local processes (torchrun / mlx.launch) train exactly like 1 process.

The text is cut so that uneven shards occur: a global batch of 7 is split 4 + 3, and each epoch
ends on a batch of 1 window, which leaves rank 1 an empty shard. The 2-process losses must still
equal the 1-process losses, rank 1 must write nothing, and 1 process must resume the 2-process run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from myllm.config.settings import ModelSettings, TrainConfig
from myllm.train.resume import read_resume
from myllm.train.setup import run_training
from tests.helpers import (
    BACKENDS,
    DISTRIBUTED_SETTINGS,
    DISTRIBUTED_TEXT_LENGTH,
    DISTRIBUTED_TOLERANCE,
    TINY_MODEL,
    assert_losses_close,
    losses_by_step,
    sample_text,
    train_on_two_ranks,
)

STEPS, RESUMED_STEPS = 20, 30


def val_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record["val_loss"] for record in map(json.loads, lines) if "val_loss" in record]


def train_in_process(backend: str, data: Path, run_dir: Path, resume: Path | None = None):
    settings = (
        {**DISTRIBUTED_SETTINGS, "max_steps": RESUMED_STEPS} if resume else DISTRIBUTED_SETTINGS
    )
    config = TrainConfig(data=str(data), checkpoint_dir=str(run_dir), **settings)
    if resume is None:
        result = run_training(backend, config, ModelSettings(**{**TINY_MODEL, "dropout": 0.1}))
    else:
        resume_point, resumed_config = read_resume(resume, config.to_dict())
        result = run_training(backend, resumed_config, ModelSettings(), resume_point)
    assert result.exit_code == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_train_like_one_and_one_resumes(backend, tmp_path):
    data = tmp_path / "input.txt"
    data.write_text(sample_text()[:DISTRIBUTED_TEXT_LENGTH], encoding="utf-8")
    two, one = tmp_path / "two", tmp_path / "one"
    train_on_two_ranks(backend, data, two, "--dropout", "0.1")
    train_in_process(backend, data, one)

    # Same per-step losses as 1 process, dropout on (the ranks draw the masks of the global
    # rows), written once, by rank 0 alone.
    assert_losses_close(losses_by_step(two), losses_by_step(one))
    assert val_losses(two) == pytest.approx(val_losses(one), abs=DISTRIBUTED_TOLERANCE)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    # the token cache beside the text is shared by the ranks and by the 1-process run
    assert sorted(p.name for p in tmp_path.iterdir()) == [".myllm_cache", "input.txt", "one", "two"]
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    suffix = ".pt" if backend == "torch" else ".safetensors"
    assert (two / f"checkpoint_epoch_2{suffix}").is_file()

    # 1 process continues the 2-process run as it continues its own.
    train_in_process(backend, data, two, resume=two / f"checkpoint_last{suffix}")
    train_in_process(backend, data, one, resume=one / f"checkpoint_last{suffix}")
    resumed = {step: loss for step, loss in losses_by_step(two).items() if step > STEPS}
    assert sorted(resumed) == list(range(STEPS + 1, RESUMED_STEPS + 1))
    assert_losses_close(resumed, {s: v for s, v in losses_by_step(one).items() if s > STEPS})
