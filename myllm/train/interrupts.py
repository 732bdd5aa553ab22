"""SIGINT / SIGTERM during training: finish the step, save, exit 130 / 143.

The first signal only sets a flag that the loop checks after each step. A second one stops at once
with the same exit code. It raises SystemExit (click would turn a KeyboardInterrupt into "Aborted!"
and exit code 1) wherever the program is, so a save in progress removes its temporary file and the
checkpoint it would have replaced stays whole (myllm/atomic.py).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class GracefulStop:
    """Context manager: `requested` becomes the signal number of the first SIGINT / SIGTERM."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
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


def until_stopped(items: Iterator[T], stop: GracefulStop) -> Iterator[T]:
    """The items of `items` until a stop is requested (the first always: never an empty pass).

    How an evaluation or a sample ends within one batch or token of a SIGINT / SIGTERM.
    """
    for index, item in enumerate(items):
        if index > 0 and stop.requested is not None:
            return
        yield item
