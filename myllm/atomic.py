"""Atomic file writes: a temporary file in the same directory, fsynced, then renamed.

An interrupted or failed write never destroys the file it replaces (DESIGN §5).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from myllm.errors import UserError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, else it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
        _fsync_directory(path.parent)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise UserError(
            f"could not write {path} ({error.strerror or error}); the previous file is intact: "
            "free disk space or write to another directory"
        ) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` atomically with `write(temp_path)`."""
    with atomic_path(path) as temp:
        write(temp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
