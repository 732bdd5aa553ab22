"""Paths a user gives, checked once before any work: a file a command reads, a folder it reads,
and the --json report it writes.

Each check is one line naming the path and what is wrong with it (missing, a directory, a pipe or
device, unreadable), with the fix the caller names for its own command. `--json PATH` writes the
report to PATH and `--json -` to stdout, in every command; PATH is checked before the work starts,
so a report that cannot be written never costs a whole run.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from myllm.atomic import atomic_write_text
from myllm.errors import UserError

STDOUT = "-"


def check_file(path: Path, what: str, fix: str) -> None:
    """A UserError unless `path` is a regular file this process can open for reading."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found: {fix}") from None
    except OSError as error:
        raise unreadable(path, what, fix, error) from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {path} is a directory, not a file: {fix}")
    if not stat.S_ISREG(mode):
        raise UserError(f"{what} {path} is not a regular file (a pipe, device or socket): {fix}")
    try:
        os.close(os.open(path, os.O_RDONLY))  # a regular file: opening it does not block
    except OSError as error:
        raise unreadable(path, what, fix, error) from None


def unreadable(path: Path, what: str, fix: str, error: OSError) -> UserError:
    """The error for a path that exists but cannot be read (permissions, an I/O error)."""
    return UserError(f"{what} {path} cannot be read ({error.strerror or error}): {fix}")


def check_directory(path: Path, what: str, fix: str) -> None:
    """A UserError unless `path` is a directory this process can list."""
    if not path.exists():
        raise UserError(f"{what} {path} not found: {fix}")
    if not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a directory: {fix}")
    try:
        next(os.scandir(path), None)
    except OSError as error:
        raise unreadable(path, what, fix, error) from None


def check_json_output(path: str | Path | None) -> None:
    """--json PATH must name a file that can be written (or be "-", stdout), before any work."""
    if path is not None and str(path) != STDOUT:
        check_output_file(Path(path), "--json", "pass --json FILE.json, or --json - for stdout")


def check_output_file(path: Path, flag: str, fix: str) -> None:
    """An output file named by `flag` must be writable, checked before minutes of work.

    Folders that do not exist yet are made when the file is written."""
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory: {fix}")
    folder = next(parent for parent in path.parents if parent.exists())
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: {folder} is a file, not a folder: {fix}")
    writable = os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
    if not writable:
        raise UserError(f"{flag} {path} cannot be written (permission denied): {fix}")


def write_json_output(path: str | Path, report: dict[str, Any]) -> None:
    """Write `report` as JSON to `path` (atomically), or to stdout when `path` is "-"."""
    text = json.dumps(report, indent=2) + "\n"
    if str(path) == STDOUT:
        sys.stdout.write(text)
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(path), text)
    except OSError as error:
        raise UserError(
            f"could not write --json {path} ({error.strerror or error}): free disk space, or "
            "pass another --json FILE"
        ) from None
