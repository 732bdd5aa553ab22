"""The files of a run directory: checkpoints by name, tokenizer.json, run.json, metrics.jsonl."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from myllm.atomic import atomic_write, atomic_write_text
from myllm.errors import UserError

# A run directory's file names, spelled here only (checkpoints add their backend's suffix).
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
SUPERSEDED_METRICS = "metrics.superseded.jsonl"
TOKENIZER = "tokenizer.json"
LOCK = "run.lock"
RUN_RECORDS = (RUN_INFO, METRICS, SUPERSEDED_METRICS, TOKENIZER)
LAST_CHECKPOINT = "checkpoint_last"
BEST_CHECKPOINT = "best_model"


def epoch_checkpoint(epoch: int) -> str:
    """The checkpoint name saved at the end of `epoch` (counted from 1)."""
    return f"checkpoint_epoch_{epoch}"


def tokenizer_beside(checkpoint: Path) -> Path:
    """The tokenizer.json a run writes beside its checkpoints."""
    return checkpoint.parent / TOKENIZER


@dataclass
class RunFiles:
    """Where a run writes. `suffix` is the backend's checkpoint extension (.pt or .safetensors)."""

    directory: Path
    suffix: str

    def create_directory(self) -> None:
        """mkdir -p the run directory, or a UserError naming it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"cannot create the checkpoint directory {self.directory} "
                f"({error.strerror or error}): pass another --checkpoint-dir"
            ) from None

    def checkpoint(self, name: str) -> Path:
        """e.g. checkpoint("best_model") -> checkpoints/best_model.pt"""
        return self.directory / f"{name}{self.suffix}"

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint of this directory written last, or None when there is none yet."""
        found = [path for path in self.directory.glob(f"*{self.suffix}") if path.is_file()]
        return max(found, key=lambda path: path.stat().st_mtime_ns, default=None)

    @property
    def tokenizer(self) -> Path:
        return self.directory / TOKENIZER

    @property
    def metrics(self) -> Path:
        return self.directory / METRICS

    def set_aside_metrics_after(self, step: int) -> int:
        """Move metrics.jsonl's records of steps after `step` to metrics.superseded.jsonl."""
        aside = self.directory / SUPERSEDED_METRICS
        try:
            return set_aside_records_after(self.metrics, step, aside)
        except OSError as error:
            raise UserError(
                f"could not set aside the records after step {step} of {self.metrics} "
                f"({error.strerror or error}); nothing was lost: free disk space and resume again"
            ) from None

    @property
    def run_info(self) -> Path:
        return self.directory / RUN_INFO

    def write_run_info(self, info: dict[str, Any]) -> None:
        info = {
            **info,
            "command": " ".join(sys.argv),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_text(self.run_info, json.dumps(info, indent=2, sort_keys=True))

    def add_resume_to_run_info(self, info: dict[str, Any]) -> None:
        """A run resumed in place keeps its run.json and appends this start to its "resumes" list.

        Without a readable run.json (e.g. a run resumed into a new directory), it is written anew.
        """
        try:
            existing = json.loads(self.run_info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = None
        if not isinstance(existing, dict):
            self.write_run_info(info)
            return
        resume = {
            **info,
            "command": " ".join(sys.argv),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        resumes = existing.get("resumes")
        existing["resumes"] = [*(resumes if isinstance(resumes, list) else []), resume]
        atomic_write_text(self.run_info, json.dumps(existing, indent=2, sort_keys=True))


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl, flushed and fsynced per record.

    Append-only by design, the one file not written by temp-file-and-rename (myllm/atomic.py): that
    would rewrite the whole file at every record. A crash can at worst leave a torn last line, which
    readers skip and a resumed run cuts off. A failed write (disk full) is a one-line UserError.
    """

    def __init__(self, path: Path, append: bool, enabled: bool = True):
        self.path = path
        self.file = None
        if enabled:  # data-parallel ranks other than 0 write nothing
            with self.errors_as_user_error():
                path.parent.mkdir(parents=True, exist_ok=True)
                if append:
                    drop_torn_last_line(path)
                self.file = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            with self.errors_as_user_error():
                self.file.write(json.dumps(record) + "\n")
                self.file.flush()
                os.fsync(self.file.fileno())

    @contextlib.contextmanager
    def errors_as_user_error(self) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise UserError(
                f"could not write {self.path} ({error.strerror or error}); the checkpoints already "
                "written are intact: free disk space or pass another --checkpoint-dir"
            ) from None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def drop_torn_last_line(path: Path) -> None:
    """Cut a line left half-written by a crash, so that appended records start on a fresh line."""
    if not path.is_file():
        return
    content = path.read_bytes()
    if content and not content.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(content.rfind(b"\n") + 1)


def set_aside_records_after(metrics: Path, step: int, aside: Path) -> int:
    """Move the records of steps after `step` from `metrics` to the end of `aside`; how many.

    A resumed run starts at its checkpoint's step. Records of later steps in metrics.jsonl were
    logged by the process that went past that checkpoint and was cut off (a crash, a SIGKILL), and
    the resumed run logs those steps again: left in place, every such step would appear twice.
    They are kept beside, not deleted (nothing written is lost): appended to `aside` and fsynced
    first, then metrics.jsonl is rewritten atomically, so a crash in between leaves a copy too many,
    never one too few. Lines are moved as bytes, unchanged.
    """
    if not metrics.is_file():
        return 0
    kept, superseded = [], []
    for line in metrics.read_bytes().splitlines(keepends=True):
        (superseded if _record_step(line) > step else kept).append(line)
    if superseded:
        with open(aside, "ab") as handle:
            handle.writelines(superseded)
            handle.flush()
            os.fsync(handle.fileno())
        atomic_write(metrics, lambda temp: temp.write_bytes(b"".join(kept)))
    return len(superseded)


def _record_step(line: bytes) -> int:
    """The "step" of a metrics line; -1 for a line without one (a torn line: kept in place)."""
    try:
        record = json.loads(line)
    except ValueError:  # UnicodeDecodeError included
        return -1
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else -1
