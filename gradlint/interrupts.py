"""Stopping: Ctrl-C and the per-file time limit end work; no guard may mistake them for a bug.

Both arrive as exceptions raised by signal handlers, at whatever line happens to run. Code
between the handler and gradlint can turn them into something else: libcst, for one, has
been seen to re-raise an interrupt as a KeyError. The handlers therefore also record that a
stop was requested, and every broad `except Exception` boundary asks `stop_behind(exc)`
before treating an error as a rule's or a file's own.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class FileTimeout(BaseException):
    """One file took longer than the per-file limit (a BaseException: no `except Exception`
    boundary may catch it)."""


_REQUESTED: list[type[BaseException]] = []  # stops signalled and not yet handled, in order


def stop_behind(exc: BaseException) -> BaseException | None:
    """The interrupt or timeout that `exc` stands for, if any: one in its cause/context chain,
    or one a signal handler requested while it was raised; None for an ordinary error."""
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        if not isinstance(current, Exception):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return _REQUESTED[-1]() if _REQUESTED else None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _REQUESTED.append(KeyboardInterrupt)
    raise KeyboardInterrupt


def handle_interrupts() -> None:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt and is remembered (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise FileTimeout after `seconds` (Unix main thread only; elsewhere no limit)."""
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        _REQUESTED.append(FileTimeout)
        raise FileTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        while FileTimeout in _REQUESTED:  # this file's time is over; the next one starts afresh
            _REQUESTED.remove(FileTimeout)
