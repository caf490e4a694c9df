"""The concise line plus the source line, a caret under the finding, and the hint."""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.findings import FileResult
from gradlint.output.concise import line_for
from gradlint.rule import Rule


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    blocks: list[str] = []
    for result in results:
        for finding in result.findings:
            lines = [line_for(finding)]
            if 0 < finding.line <= len(result.source_lines):
                source = result.source_lines[finding.line - 1].expandtabs(1)
                width = len(str(finding.line))
                start = max(finding.column - 1, 0)
                if finding.end_line == finding.line:
                    length = max(finding.end_column - finding.column, 1)
                else:
                    length = max(len(source) - start, 1)
                lines.append(f"{' ' * width} |")
                lines.append(f"{finding.line} | {source}")
                lines.append(f"{' ' * width} | {' ' * start}{'^' * length} {finding.severity.value}")
            if finding.hint:
                lines.append(f"  = help: {finding.hint}")
            blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
