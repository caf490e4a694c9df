"""`gradlint.watch`: the runtime probe inside the user's own training loop.

Importing this package never imports torch; `gradlint.watch(...)` and the Lightning and
Hugging Face callbacks do. Reading a log (`gradlint watch-report`) needs no torch at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradlint.watcher.core import Watch

__all__ = ["Watch"]


def __getattr__(name: str) -> Any:
    if name == "Watch":
        from gradlint.watcher.core import Watch

        return Watch
    raise AttributeError(f"module 'gradlint.watcher' has no attribute {name!r}")
