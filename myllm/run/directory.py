"""Who may write a run directory: a new run refuses one that holds a run, and one run at a time.

A run directory holds run.json, metrics.jsonl, tokenizer.json and checkpoints. A new run into it
would replace them, so it is refused unless the user asks for that with --overwrite; --resume
continues the run in place and keeps its history. An exclusive lock (fcntl.flock on run.lock,
which holds the owner's PID) keeps two runs from writing the same files at once; the operating
system releases it when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from myllm.backend.registry import CHECKPOINT_SUFFIXES
from myllm.errors import UserError
from myllm.run.files import (
    LAST_CHECKPOINT,
    LOCK,
    RUN_INFO,
    RUN_RECORDS,
    TOKENIZER,
    RunFiles,
    is_run_checkpoint,
)


def run_files_in(
    directory: Path, suffixes: tuple[str, ...] = tuple(CHECKPOINT_SUFFIXES)
) -> list[Path]:
    """The files a run wrote in `directory`: its records and its checkpoints, by name.

    Only those names (myllm/run/files.py): a keep.pt copied there by hand, or the
    for_mlx.safetensors a convert put beside the run, is not the run's.
    """
    if not directory.is_dir():
        return []
    return sorted(
        path
        for path in directory.iterdir()
        if path.is_file() and (path.name in RUN_RECORDS or is_run_checkpoint(path, suffixes))
    )


def holds_run(directory: Path) -> bool:
    """True when `directory` holds a run's records (a lone tokenizer.json is not a run)."""
    return any(path.name != TOKENIZER for path in run_files_in(directory))


def check_new_run_directory(directory: Path, suffix: str, overwrite: bool) -> None:
    """A new run may write `directory` only when it holds no run, or when --overwrite says so."""
    if overwrite or not holds_run(directory):
        return
    raise UserError(
        f"checkpoint directory {directory} already holds a run: continue it with "
        f"--resume {directory / (LAST_CHECKPOINT + suffix)}, replace it with --overwrite, "
        "or pass another --checkpoint-dir"
    )


def remove_run_files(directory: Path) -> list[Path]:
    """--overwrite: delete the files the previous run wrote, and only those; returns them.

    Its checkpoints are those of the backends its run.json names (both, without a readable one).
    """
    removed = run_files_in(directory, suffixes_of_run(directory))
    for path in removed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return removed


def suffixes_of_run(directory: Path) -> tuple[str, ...]:
    """The checkpoint suffixes of the backends that wrote the run (its start and its resumes)."""
    try:
        info = json.loads((directory / RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        return tuple(CHECKPOINT_SUFFIXES)
    resumes = info.get("resumes") if isinstance(info.get("resumes"), list) else []
    starts = [info, *(start for start in resumes if isinstance(start, dict))]
    by_backend = {backend: suffix for suffix, backend in CHECKPOINT_SUFFIXES.items()}
    found = tuple(by_backend[s["backend"]] for s in starts if s.get("backend") in by_backend)
    return found or tuple(CHECKPOINT_SUFFIXES)


def not_a_folder(directory: Path) -> str | None:
    """ "X is a file, not a folder" when `directory` or a folder above it is a file."""
    blocking = next((path for path in (directory, *directory.parents) if path.is_file()), None)
    return f"{blocking} is a file, not a folder" if blocking is not None else None


class RunLock:
    """An exclusive lock on a run directory for the life of a run (context manager).

    The lock file stays after the run: removing it would let a third run lock a fresh file while
    a second still waits on the old one.
    """

    def __init__(self, directory: Path):
        self.path = directory / LOCK
        self.handle: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise a UserError naming the PID of the run that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UserError(
                f"cannot create the checkpoint directory {self.path.parent} "
                f"({not_a_folder(self.path.parent) or error.strerror or error}): "
                "pass another --checkpoint-dir"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise UserError(
                f"checkpoint directory {self.path.parent} is in use by another run (PID {owner}): "
                "wait for it to end, or pass another --checkpoint-dir"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            os.close(self.handle)  # closing the descriptor releases the flock
            self.handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def claim_run_directory(
    files: RunFiles, trainer: Any, overwrite: bool, continues_in_place: bool, is_main: bool
) -> RunLock | None:
    """Rank 0 locks the run directory and checks it again under the lock; all ranks agree.

    The check before the lock ran before the data and the model were ready; another run may
    have written the directory since. `trainer` is the run's (myllm/backend/contract.py Trainer).
    """
    lock, problem = None, None
    if is_main:
        lock = RunLock(files.directory)
        try:
            lock.acquire()
            if not continues_in_place:
                check_new_run_directory(files.directory, files.suffix, overwrite)
        except UserError as error:
            lock.release()
            problem = error
    if trainer.max_over_ranks(int(problem is not None)):
        raise problem or UserError(
            f"rank 0 could not claim the checkpoint directory {files.directory} "
            "(see its message): pass another --checkpoint-dir"
        )
    return lock
