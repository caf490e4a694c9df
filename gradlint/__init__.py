"""gradlint: find gradient-flow bugs in PyTorch code."""

from __future__ import annotations

from gradlint.findings import FileResult, Finding, Severity
from gradlint.rule import Invalid, Rule, Valid

__version__ = "0.1.0"

__all__ = ["FileResult", "Finding", "Invalid", "Rule", "Severity", "Valid", "__version__"]
