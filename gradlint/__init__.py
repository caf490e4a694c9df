"""gradlint: find gradient-flow bugs in PyTorch code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradlint.findings import FileResult, Finding, Severity

if TYPE_CHECKING:
    from gradlint.rule import Invalid, Rule, Valid

__version__ = "0.1.0"

__all__ = ["FileResult", "Finding", "Invalid", "Rule", "Severity", "Valid", "__version__"]


def __getattr__(name: str) -> Any:
    # The rule API pulls in libcst; a run answered from the cache never needs it.
    if name in ("Invalid", "Rule", "Valid"):
        from gradlint import rule

        return getattr(rule, name)
    raise AttributeError(f"module 'gradlint' has no attribute {name!r}")
