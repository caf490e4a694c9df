"""Helpers to run rules on snippets (used by the generic rule test and by rule authors)."""

from __future__ import annotations

from gradlint.config import Config
from gradlint.engine import lint_source
from gradlint.findings import Finding
from gradlint.rule import Rule


def run_rule(
    rule: type[Rule], source: str, path: str = "snippet.py", config: Config | None = None
) -> list[Finding]:
    """Findings of one rule on a snippet; GL000 internal errors included so tests see them."""
    result = lint_source(source, path, config or Config(), [rule])
    return list(result.findings)
