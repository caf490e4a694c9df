"""`path:line:col: CODE message`, one finding a line (the editor problem-matcher shape)."""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.findings import FileResult, Finding
from gradlint.rule import Rule


def line_for(finding: Finding) -> str:
    message = " ".join(finding.message.split())  # a finding is always exactly one line
    return f"{finding.path}:{finding.line}:{finding.column}: {finding.code} {message}"


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    return "".join(line_for(f) + "\n" for result in results for f in result.findings)
