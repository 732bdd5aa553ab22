"""SIGINT / SIGTERM / SIGHUP during training: finish the step, save, exit 130 / 143 / 129.

SIGHUP is a closed terminal or a dropped ssh session: the run is saved as for SIGTERM. Its
terminal is gone, so standard output and error are pointed at /dev/null where they were that
terminal (a write to a hung-up terminal fails, and must not stop the save); redirected output,
a log file, keeps the messages.

The first signal only sets a flag that the loop checks after each step. A second one stops at once
with the same exit code. It raises SystemExit (click would turn a KeyboardInterrupt into "Aborted!"
and exit code 1) wherever the program is, so a save in progress removes its temporary file and the
checkpoint it would have replaced stays whole (myllm/atomic.py).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


class GracefulStop:
    """Context manager: `requested` becomes the signal number of the first SIGINT / SIGTERM /
    SIGHUP."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, object] = {}
        # Known before a hang-up: a hung-up terminal no longer answers isatty.
        self._terminals = [fd for fd in (1, 2) if _is_terminal(fd)]

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal(self._terminals)
        if self.requested is not None:  # second signal: stop now, without saving
            sys.stderr.write(
                f"\n{signal.Signals(signum).name} again: stopped at once; the checkpoints on "
                "disk are the last ones saved\n"
            )
            raise SystemExit(EXIT_CODES[signum])
        self.requested = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.requested, 130)


def detach_from_terminal(descriptors: list[int]) -> None:
    """Point these descriptors (standard output, error: the hung-up terminal) at /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for descriptor in descriptors:
        os.dup2(devnull, descriptor)
    os.close(devnull)


def _is_terminal(descriptor: int) -> bool:
    try:
        return os.isatty(descriptor)
    except OSError:
        return False


def until_stopped(items: Iterator[T], stop: GracefulStop) -> Iterator[T]:
    """The items of `items` until a stop is requested (the first always: never an empty pass).

    How an evaluation or a sample ends within one batch or token of a SIGINT / SIGTERM.
    """
    for index, item in enumerate(items):
        if index > 0 and stop.requested is not None:
            return
        yield item
