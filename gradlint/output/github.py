"""GitHub Actions workflow commands: one `::warning ...::message` annotation per finding.

A notebook finding cannot point at a line of the `.ipynb` file (its lines are JSON), so it
annotates the whole file and its message starts with the place: `cell 4, line 3: ...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gradlint.findings import FileResult, Severity

if TYPE_CHECKING:
    from gradlint.rule import Rule

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    out = []
    for result in results:
        for f in result.findings:
            fields = [f"file={_escape_property(f.path)}"]
            message = f.message
            if f.cell is None:
                fields += [
                    f"line={f.line}",
                    f"col={f.column}",
                    f"endLine={f.end_line}",
                    f"endColumn={f.end_column}",
                ]
            else:
                message = f"cell {f.cell}, line {f.line}: {message}"
            fields.append(f"title={_escape_property(f'{f.code} {f.name}')}")
            out.append(f"::{_LEVEL[f.severity]} {','.join(fields)}::{_escape_data(message)}\n")
    return "".join(out)
