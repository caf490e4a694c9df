"""A one-line progress note on standard error for long runs, only when it is a terminal."""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

DELAY = 1.0  # quiet for short runs: the note appears only after this many seconds
_FRAMES = "|/-\\"
# Worker processes may be forked while the note is being written; holding this lock across
# fork() keeps a child from inheriting a stream locked mid-write.
_WRITING = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_WRITING.acquire,
        after_in_parent=_WRITING.release,
        after_in_child=_WRITING.release,
    )


class Progress:
    """`with Progress(n):` shows `gradlint: linting n files ... 3s` until the block ends."""

    def __init__(self, files: int, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.files = files
        self.enabled = enabled and files > 0 and _isatty(self.stream)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(
                target=self._spin, name="gradlint-progress", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self.stream.write("\r\x1b[2K")  # erase the note so the report starts clean
            self.stream.flush()

    def _spin(self) -> None:
        start = time.monotonic()
        if self._stop.wait(DELAY):
            return
        frame = 0
        while not self._stop.is_set():
            seconds = int(time.monotonic() - start)
            noun = "file" if self.files == 1 else "files"
            note = f"gradlint: linting {self.files} {noun}... {seconds}s"
            with _WRITING:
                self.stream.write(f"\r{_FRAMES[frame % 4]} {note}")
                self.stream.flush()
            self._shown = True
            frame += 1
            self._stop.wait(0.2)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
