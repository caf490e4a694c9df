"""`path:line:col: CODE message`, one finding a line (the editor problem-matcher shape).

In a notebook the position names the cell (counted as the notebook shows them, markdown
cells included): `train.ipynb:cell 4:3:1: GL104 ...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gradlint.findings import FileResult, Finding
from gradlint.notebook import location

if TYPE_CHECKING:
    from gradlint.rule import Rule


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable_path(path: str) -> str:
    """A path with control characters escaped (`a\\nb.py`): a file name may hold a newline,
    and a finding must stay one line for editors, CI problem matchers and `grep`."""
    if all(" " <= char != "\x7f" for char in path):
        return path
    return "".join(
        _ESCAPES.get(char, f"\\x{ord(char):02x}") if char < " " or char == "\x7f" else char
        for char in path
    )


def line_for(finding: Finding) -> str:
    message = " ".join(finding.message.split())  # a finding is always exactly one line
    return f"{printable_path(finding.path)}:{location(finding)}: {finding.code} {message}"


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    return "".join(line_for(f) + "\n" for result in results for f in result.findings)
