"""Atomic writes: a killed, interrupted or failed save never leaves a broken checkpoint."""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time

import pytest

from myllm.checkpoint.io import read_checkpoint, write_checkpoint
from myllm.errors import UserError
from myllm.run.files import MetricsLog
from myllm.train.setup import run_training
from tests.helpers import (
    DROPOUT_MODEL,
    ONE_THREAD_ENV,
    REPO_ROOT,
    constant_checkpoint,
    resume_from,
    signal_at_step,
    temp_files,
    two_epoch_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread is fastest


KILL_WRITER = r"""
import os, sys, time
from pathlib import Path
from myllm.checkpoint.io import write_checkpoint
from tests.helpers import constant_checkpoint
path, parent = Path(sys.argv[1]), os.getpid()
versions = [constant_checkpoint(v, d_model=64, n_layers=2) for v in (1, 2)]  # ~1 MB each
write_checkpoint(path, versions[0])  # imports torch or safetensors once, before the forks
start = time.perf_counter()
write_checkpoint(path, versions[0])
print(time.perf_counter() - start, flush=True)  # how long one save takes
for _ in sys.stdin:
    pid = os.fork()
    if pid == 0:  # save the two versions in turn until killed
        index = 0
        while os.getppid() == parent:
            index += 1
            write_checkpoint(path, versions[index % 2])
        os._exit(0)
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("killed", flush=True)
"""


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_sigkill_during_saves_never_leaves_an_unreadable_checkpoint(tmp_path, suffix):
    """12 SIGKILLs at random moments of back-to-back saves: the file is always one whole version.

    One process imports the writer once and forks a fresh one per kill, to keep this fast.
    """
    path = tmp_path / f"checkpoint_last{suffix}"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILL_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=ONE_THREAD_ENV,
    )
    killed_mid_save, leftovers, rng = 0, 0, random.Random(0)
    try:
        save_seconds = float(writer.stdout.readline())
        for _ in range(12):
            writer.stdin.write("go\n")
            writer.stdin.flush()
            pid = int(writer.stdout.readline())
            time.sleep(rng.uniform(0.2, 3.0) * save_seconds)
            os.kill(pid, signal.SIGKILL)
            assert writer.stdout.readline().strip() == "killed"
            killed_mid_save += len(temp_files(tmp_path)) > leftovers  # a save left its temp file
            leftovers = len(temp_files(tmp_path))
            loaded = read_checkpoint(path)
            version = loaded.training.step
            assert version in (1, 2)
            for name, array in loaded.weights.items():  # whole, not a mix of two saves
                assert (array == version).all(), name
                assert (loaded.optimizer.exp_avg_sq[name] == version).all(), name
    finally:
        writer.kill()  # a writer still running sees its parent gone and exits
        writer.communicate(timeout=60)
    assert killed_mid_save >= 4  # the kills really did land inside saves


def test_a_failed_checkpoint_save_stops_with_one_line_and_keeps_the_old_one(
    backend, small_text, tmp_path, monkeypatch
):
    """Disk full at the rename of a checkpoint: a UserError, the previous file whole, no litter."""
    suffix = backend.checkpoint_suffix
    last = tmp_path / f"checkpoint_last{suffix}"
    with monkeypatch.context() as patch:
        signal_at_step(patch, backend.Trainer, 5, signal.SIGINT)
        run_training(backend.name, two_epoch_config(small_text, tmp_path), DROPOUT_MODEL)
    before = last.read_bytes()
    replace = os.replace

    def disk_full_for_checkpoints(source, destination):
        if str(destination).endswith(suffix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        replace(source, destination)

    monkeypatch.setattr(os, "replace", disk_full_for_checkpoints)
    with pytest.raises(UserError) as failed:
        resume_from(backend, last)
    message = str(failed.value)
    assert "No space left on device" in message and "intact" in message and "\n" not in message
    assert last.read_bytes() == before and temp_files(tmp_path) == []


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_real_write_failure_is_a_user_error_and_keeps_the_old_file(tmp_path, suffix):
    """A real write failure (a file-size limit: EFBIG, like ENOSPC) while the file is written."""
    path = tmp_path / f"c{suffix}"
    write_checkpoint(path, constant_checkpoint(1))
    before = path.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, hard))
    try:
        with pytest.raises(UserError, match="intact"):
            write_checkpoint(path, constant_checkpoint(2))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == before and temp_files(tmp_path) == []


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_atomic_writes_get_the_usual_file_permissions(tmp_path, suffix):
    """Not mkstemp's owner-only 0600: checkpoints are shared like any file the user writes."""
    umask = os.umask(0o022)
    try:
        write_checkpoint(tmp_path / f"c{suffix}", constant_checkpoint(1))
    finally:
        os.umask(umask)
    assert (tmp_path / f"c{suffix}").stat().st_mode & 0o777 == 0o644


def test_metrics_write_errors_are_user_errors(tmp_path, monkeypatch):
    """metrics.jsonl is appended and fsynced per record (not renamed); a failure is one line."""
    log = MetricsLog(tmp_path / "metrics.jsonl", append=False)
    log.write({"step": 1})

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        log.write({"step": 2})
    log.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0]) == {"step": 1}


def test_a_file_given_as_a_folder_is_named_as_such(tmp_path):
    """Not "(File exists) ... free disk space" (issue 23 #12)."""
    from myllm.atomic import atomic_write_text

    (tmp_path / "notes").write_text("mine")
    with pytest.raises(UserError) as refused:
        atomic_write_text(tmp_path / "notes" / "sub" / "run.json", "{}")
    message = str(refused.value)
    assert f"{tmp_path / 'notes'} is a file, not a folder" in message, message
    assert "free disk space" not in message
    assert (tmp_path / "notes").read_text() == "mine"
