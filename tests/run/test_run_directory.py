"""A run is never lost: the run-directory guard, the lock, --overwrite, resume history, periodic
saves that survive a SIGKILL, and prompt stops during an evaluation (issue 12).

The exit code, the one-line message and what a killed process leaves on disk are the point: the
runs a test signals or kills are real processes (start_myllm); the others go through the CLI's
entry point in this process (helpers.run_cli), with the same exit codes and messages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from myllm.errors import UserError
from myllm.run.directory import RunLock, check_new_run_directory, holds_run, remove_run_files
from tests.helpers import BACKENDS, CliResult, run_cli, sample_text

SUFFIXES = {"torch": ".pt", "mlx": ".safetensors"}
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
TINY = ["--d-model", "32", "--n-heads", "4", "--n-layers", "2", "--block-size", "16",
        "--batch-size", "8", "--device", "cpu", "--seed", "3"]  # fmt: skip


def myllm(*args: object, check_rc: int | None = None) -> CliResult:
    result = run_cli(*args)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stderr[-2000:]
    return result


def start_myllm(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "myllm", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def has_records(run: Path) -> bool:
    path = run / "metrics.jsonl"
    return path.is_file() and path.stat().st_size > 0


def last_step(run: Path) -> int:
    """The last whole record's step (a running writer may have a line half-written)."""
    if not has_records(run):
        return 0
    lines = (run / "metrics.jsonl").read_text().split("\n")[:-1]
    return json.loads(lines[-1])["step"] if lines else 0


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text(sample_text(6000), encoding="utf-8")
    return path


# --- in-process: the guard and the lock as functions ---


def test_a_directory_with_a_run_is_refused_unless_overwrite(tmp_path):
    run = tmp_path / "run"
    check_new_run_directory(run, ".pt", overwrite=False)  # missing: fine
    run.mkdir()
    (run / "tokenizer.json").write_text("{}")
    assert not holds_run(run)  # a lone tokenizer.json (e.g. from convert) is not a run
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(UserError, match=r"--resume .*checkpoint_last\.pt.*--overwrite"):
        check_new_run_directory(run, ".pt", overwrite=False)
    check_new_run_directory(run, ".pt", overwrite=True)


def test_overwrite_removes_exactly_the_files_the_old_run_wrote(tmp_path):
    """Its records and its backend's checkpoint names; other files, same suffix or not, stay."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"backend": "torch", "resumes": "garbled"}))
    written = ["metrics.jsonl", "tokenizer.json", "checkpoint_last.pt", "best_model.pt",
               "checkpoint_epoch_12.pt", "metrics.superseded.jsonl"]  # fmt: skip
    kept = ["keep.pt", "checkpoint_last.safetensors", "checkpoint_epoch_x.pt", "best_model.pt.bak",
            "run.lock", "data.txt"]  # fmt: skip
    for name in written + kept:
        (run / name).write_text(name)
    (run / "subfolder.pt").mkdir()
    removed = remove_run_files(run)
    assert sorted(path.name for path in removed) == sorted([*written, "run.json"])
    assert sorted(path.name for path in run.iterdir()) == sorted([*kept, "subfolder.pt"])
    # Without run.json, a run checkpoint name of either backend is the run's.
    assert [path.name for path in remove_run_files(run)] == ["checkpoint_last.safetensors"]


def test_a_file_given_as_the_run_directory_is_named_as_a_file(tmp_path):
    """Not "(File exists)" (issue 23 #12); the file itself is untouched."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for directory in (notes, notes / "sub"):
        with pytest.raises(UserError, match=f"{notes} is a file, not a folder"):
            RunLock(directory).acquire()
    assert notes.read_text() == "mine"


def test_the_lock_names_the_pid_of_its_holder_and_is_released(tmp_path):
    holder_message = rf"in use by another run \(PID {os.getpid()}\)"
    with RunLock(tmp_path), pytest.raises(UserError, match=holder_message):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: it can be taken again
        pass


# --- the real CLI ---


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_run_refused_overwrite_replaces_resume_keeps_history(backend, data, tmp_path):
    run = tmp_path / "run"
    common = ["--backend", backend, "--data", data, "--checkpoint-dir", run, *TINY]
    myllm("train", *common, "--max-steps", 10, "--log-interval", 5, check_rc=0)
    first_metrics = (run / "metrics.jsonl").read_text()
    first_info = json.loads((run / "run.json").read_text())

    refused = myllm("train", *common, "--max-steps", 10)
    assert refused.returncode == 2
    last = run / f"checkpoint_last{SUFFIXES[backend]}"
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert f"--resume {last}" in refused.stderr and "--overwrite" in refused.stderr
    assert (run / "metrics.jsonl").read_text() == first_metrics  # nothing touched

    myllm("train", *common, "--resume", last, "--max-steps", 20, check_rc=0)
    info = json.loads((run / "run.json").read_text())
    assert info["command"] == first_info["command"]  # the first command is kept
    assert info["started_at"] == first_info["started_at"]
    [resumed] = info["resumes"]
    assert str(last) in resumed["command"] and resumed["step"] == 10
    steps = [record["step"] for record in metrics(run)]
    assert (run / "metrics.jsonl").read_text().startswith(first_metrics)  # appended
    assert steps[-1] == 20

    # Files beside the run that it did not write: a copy by hand, convert's output, notes.
    beside = {"keep.pt": b"mine", "for_mlx.safetensors": b"converted", "notes.txt": b"x"}
    for name, content in beside.items():
        (run / name).write_bytes(content)
    (run / f"checkpoint_epoch_7{SUFFIXES[backend]}").write_bytes(last.read_bytes())
    myllm("train", *common, "--max-steps", 5, "--log-interval", 5, "--overwrite", check_rc=0)
    assert [record["step"] for record in metrics(run)] == [5, 5]  # train, then val record
    assert "resumes" not in json.loads((run / "run.json").read_text())
    assert {name: (run / name).read_bytes() for name in beside} == beside  # all survive
    assert not (run / f"checkpoint_epoch_7{SUFFIXES[backend]}").exists()  # the old run's: gone


def test_a_second_run_into_a_locked_directory_exits_2_naming_the_pid(data, tmp_path):
    run = tmp_path / "run"
    first = start_myllm(
        "train", "--data", data, "--checkpoint-dir", run, *TINY,
        "--max-steps", 100000, "--log-interval", 1,
    )  # fmt: skip
    try:
        wait_for(lambda: has_records(run))
        second = myllm("train", "--data", data, "--checkpoint-dir", run, *TINY, "--overwrite")
        assert second.returncode == 2
        assert f"in use by another run (PID {first.pid})" in second.stderr
        assert second.stderr.strip().count("\n") == 0
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    assert metrics(run)  # the first run's records are whole (one JSON object per line)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_mid_run_then_resume_from_the_periodic_save(backend, data, tmp_path):
    run = tmp_path / "run"
    common = ["--backend", backend, "--data", data, "--checkpoint-dir", run, *TINY]
    last = run / f"checkpoint_last{SUFFIXES[backend]}"
    process = start_myllm(
        "train", *common, "--max-steps", 100000, "--save-interval", 20, "--log-interval", 10
    )
    try:
        wait_for(lambda: last.is_file() and last_step(run) >= 50)
    finally:
        process.kill()  # SIGKILL: no handler runs, nothing is saved at exit
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    from myllm.checkpoint.io import read_checkpoint

    saved_step = read_checkpoint(last).training.step
    assert saved_step >= 40 and saved_step % 20 == 0
    before = metrics(run)  # the killed process logged steps past its last save
    result = myllm("train", *common, "--resume", last, "--max-steps", saved_step + 10)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_checkpoint(last).training.step == saved_step + 10
    # Each step once in metrics.jsonl; the cut-off process's later records kept beside it.
    steps = [record["step"] for record in metrics(run) if "val_loss" not in record]
    assert steps == sorted(set(steps)) and steps[-1] == saved_step + 10
    superseded = [record for record in before if record["step"] > saved_step]
    assert superseded_records(run) == superseded  # none when the kill came right after a save


@pytest.mark.parametrize("backend", BACKENDS)
def test_resuming_an_earlier_checkpoint_sets_the_later_records_aside(backend, data, tmp_path):
    run = tmp_path / "run"
    common = ["--backend", backend, "--data", data, "--checkpoint-dir", run, *TINY]
    suffix = SUFFIXES[backend]
    myllm("train", *common, "--max-steps", 10, "--log-interval", 5, check_rc=0)
    earlier = run / f"step_10{suffix}"
    earlier.write_bytes((run / f"checkpoint_last{suffix}").read_bytes())
    last = run / f"checkpoint_last{suffix}"
    myllm("train", *common, "--resume", last, "--max-steps", 20, "--log-interval", 5, check_rc=0)
    before = metrics(run)
    result = myllm(
        "train", *common, "--resume", earlier, "--max-steps", 20, "--log-interval", 5, check_rc=0
    )
    later = [record for record in before if record["step"] > 10]  # train 15, 20; val 20
    assert len(later) == 3 and f"moved {len(later)} metrics record(s)" in result.stderr
    assert superseded_records(run) == later
    steps = [record["step"] for record in metrics(run) if "val_loss" not in record]
    assert steps == [5, 10, 15, 20]


def superseded_records(run: Path) -> list[dict]:
    aside = run / "metrics.superseded.jsonl"
    if not aside.is_file():
        return []
    return [json.loads(line) for line in aside.read_text().splitlines()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigint_during_a_long_evaluation_is_honoured_within_2_s(backend, data, tmp_path):
    """An evaluation of the most batches a setting allows takes long; the signal stops it within
    one batch."""
    from myllm.config.settings import BATCHES_LIMIT

    run = tmp_path / "run"
    process = start_myllm(
        "train", "--backend", backend, "--data", data, "--checkpoint-dir", run, *TINY,
        "--max-steps", 100, "--log-interval", 5, "--eval-interval", 5,
        "--eval-iters", BATCHES_LIMIT,
    )  # fmt: skip
    try:
        wait_for(lambda: has_records(run))
        time.sleep(0.5)  # the evaluation starts right after the step-5 record
        process.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        lines = iter(process.stderr.readline, "")
        stopped_line = next(line for line in lines if "evaluation stopped" in line)
        honoured_after = time.monotonic() - signalled
        _, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "step 5: evaluation stopped, not recorded" in stopped_line
    assert honoured_after < 2.0
    assert process.returncode == 130
    assert all("val_loss" not in record for record in metrics(run))  # the cut one is not recorded
    assert "Interrupted at step 5" in rest


def test_setting_records_aside_moves_lines_as_bytes_and_keeps_the_rest(tmp_path):
    from myllm.run.files import set_aside_records_after

    metrics_file, aside = tmp_path / "metrics.jsonl", tmp_path / "aside.jsonl"
    lines = [
        b'{"step": 5, "train_loss": 1.0}\n',
        b'{"step": 10, "note": "caf\xc3\xa9"}\n',
        b'{"step": 15, "train_loss": 0.5}\n',
        b"not json \xff\n",
        b'{"step": 20, "va',
    ]
    metrics_file.write_bytes(b"".join(lines))
    assert set_aside_records_after(metrics_file, 10, aside) == 1
    assert aside.read_bytes() == lines[2]
    assert metrics_file.read_bytes() == b"".join(lines[:2] + lines[3:])  # torn last line stays
    assert set_aside_records_after(metrics_file, 10, aside) == 0  # nothing more to move
    assert set_aside_records_after(tmp_path / "missing.jsonl", 0, aside) == 0
