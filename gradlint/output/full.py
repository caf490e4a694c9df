"""The concise line plus the source line, a caret under the finding, and the hint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gradlint.findings import FileResult
from gradlint.notebook import source_line
from gradlint.output.concise import line_for

if TYPE_CHECKING:
    from gradlint.rule import Rule


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    blocks: list[str] = []
    for result in results:
        for finding in result.findings:
            lines = [line_for(finding)]
            text = source_line(result, finding)
            if text is not None:
                source = text.expandtabs(1)
                width = len(str(finding.line))
                start = max(finding.column - 1, 0)
                if finding.end_line == finding.line:
                    length = max(finding.end_column - finding.column, 1)
                else:
                    length = max(len(source) - start, 1)
                lines.append(f"{' ' * width} |")
                lines.append(f"{finding.line} | {source}")
                caret = f"{' ' * start}{'^' * length}"
                lines.append(f"{' ' * width} | {caret} {finding.severity.value}")
            if finding.hint:
                lines.append(f"  = help: {finding.hint}")
            blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
