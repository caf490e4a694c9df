"""ANSI colour for the human formats: only on a terminal, never when NO_COLOR is set.

`--color always` is an explicit request and wins over NO_COLOR, as https://no-color.org
asks of command-line flags; `auto` (the default) colours a terminal unless NO_COLOR is set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from gradlint.findings import FileResult, Severity
from gradlint.notebook import location
from gradlint.output.concise import line_for

BOLD, RESET = "\x1b[1m", "\x1b[0m"
_SEVERITY = {
    Severity.ERROR: "\x1b[1;31m",  # bold red
    Severity.WARNING: "\x1b[1;33m",  # bold yellow
    Severity.INFO: "\x1b[1;36m",  # bold cyan
}


def use_color(choice: str, terminal: bool) -> bool:
    if choice != "auto":
        return choice == "always"
    return terminal and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def colorize(report: str, results: Sequence[FileResult]) -> str:
    """Colour each finding's concise line (also the first line of a `full` block)."""
    styled = {}
    for result in results:
        for f in result.findings:
            plain = line_for(f)
            rest = plain[len(f"{f.path}:{location(f)}: {f.code}") :]
            styled[plain] = (
                f"{BOLD}{f.path}{RESET}:{location(f)}: {_SEVERITY[f.severity]}{f.code}{RESET}{rest}"
            )
    return "".join(
        styled.get(line.rstrip("\n"), line.rstrip("\n")) + ("\n" if line.endswith("\n") else "")
        for line in report.splitlines(keepends=True)
    )
