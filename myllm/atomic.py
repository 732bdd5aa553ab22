"""Atomic file writes: a temporary file in the same directory, fsynced, then renamed.

An interrupted or failed write never destroys the file it replaces: a checkpoint on disk is
always a whole one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from myllm.errors import UserError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, else it is removed.

    Any OSError (disk full, read-only or missing directory) becomes a one-line UserError.
    """
    temp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        temp = Path(temp_name)
        os.fchmod(handle, _default_mode())  # mkstemp's 0600 would make every checkpoint private
        os.close(handle)
        yield temp
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
        _fsync_directory(path.parent)
    except OSError as error:
        _remove(temp)
        raise UserError(write_failure(path, error)) from None
    except BaseException:
        _remove(temp)
        raise


def write_failure(path: Path, error: OSError) -> str:
    """Why `path` could not be written, and the fix that fits: a file where a folder must be,
    a full disk, or a folder this user may not write."""
    blocking = next((parent for parent in path.parents if parent.is_file()), None)
    if blocking is not None:
        return f"could not write {path}: {blocking} is a file, not a folder; write elsewhere"
    fix = "free disk space or " if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return (
        f"could not write {path} ({error.strerror or error}); any previous version of it is "
        f"intact: {fix}write to another directory"
    )


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` atomically with `write(temp_path)`."""
    with atomic_path(path) as temp:
        write(temp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def _default_mode() -> int:
    """The permissions open() gives a new file: 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _remove(temp: Path | None) -> None:
    if temp is not None:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
