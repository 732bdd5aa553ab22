"""The memory limit: the smallest of RAM, MemAvailable, a cgroup's limit and RLIMIT_AS, and the
commands checked against it before allocating (issue 23 #6)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import myllm.train.memory as memory
from myllm.train.memory import GIB, MemoryLimit, memory_limit
from tests.helpers import sample_text

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
FOUR_GIB = 4 * GIB


def test_the_limit_is_the_smallest_one_the_system_reports(monkeypatch):
    sources = {"physical_memory": 64 * GIB, "_meminfo_available": 20 * GIB,
               "_cgroup_limit": 8 * GIB, "_address_space_left": None}  # fmt: skip
    for name, value in sources.items():
        monkeypatch.setattr(memory, name, lambda value=value: value)
    limit = memory_limit("cpu")
    assert limit == MemoryLimit(8 * GIB, limit.source) and "cgroup" in limit.source
    monkeypatch.setattr(memory, "_address_space_left", lambda: 3 * GIB)
    assert "RLIMIT_AS" in memory_limit("cpu").source
    assert memory_limit("cuda:1") is None  # the GPU's memory: the core cannot see it


@pytest.mark.parametrize(
    ("content", "expected"),
    [("max\n", None), ("9223372036854771712\n", None), ("1073741824\n", GIB), ("", None)],
    ids=["v2-no-limit", "v1-no-limit", "one-gib", "empty"],
)
def test_cgroup_limit_files_are_read_as_bytes_or_no_limit(content, expected, tmp_path):
    path = tmp_path / "memory.max"
    path.write_text(content)
    assert memory._read_limit(path) == expected
    assert memory._read_limit(tmp_path / "absent") is None


def test_the_address_space_left_under_rlimit_as_is_seen(tmp_path):
    """A child under `prlimit --as=4GiB`: the limit is what that leaves, not the RAM."""
    code = (
        "from myllm.train.memory import memory_limit; l = memory_limit(); print(l.bytes, l.source)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (FOUR_GIB, FOUR_GIB)),
    )  # fmt: skip
    size, source = result.stdout.split(" ", 1)
    assert 0 < int(size) < FOUR_GIB and "RLIMIT_AS" in source, result.stderr


def under_four_gib(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "myllm", *map(str, args)], capture_output=True, text=True,
        env=ENV, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (FOUR_GIB, FOUR_GIB)),
    )  # fmt: skip


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    message = result.stderr.strip()
    assert result.returncode == 2, message[-2000:]
    assert "\n" not in message and "Traceback" not in message, message
    for word in words:
        assert word in message, message


def test_train_under_rlimit_as_is_refused_before_allocating(tmp_path):
    data = tmp_path / "input.txt"
    data.write_text(sample_text(20_000), encoding="utf-8")  # a validation window of 1024
    result = under_four_gib("train", "--data", data, "--checkpoint-dir", tmp_path / "run",
                            "--preset", "gpt2-small", "--batch-size", 24, "--block-size", 1024,
                            "--device", "cpu")  # fmt: skip
    assert_refused(result, "RLIMIT_AS", "lower --batch-size to at most")
    assert not (tmp_path / "run").exists()


def test_bench_is_checked_against_the_limit_and_its_synthetic_text(tmp_path):
    shape = ["--batch-size", 100000, "--block-size", 1024, "--device", "cpu"]
    result = under_four_gib("bench", "--backends", "torch", *shape)
    assert_refused(result, "a training step needs", "RLIMIT_AS")
    assert_refused(
        under_four_gib("bench", "--backends", "torch", "--block-size", 10**6, "--device", "cpu"),
        "--block-size",
    )
