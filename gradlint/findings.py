"""Value types that flow from the engine to the renderers: data only, no printing."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradlint.project import FileSummary


class Severity(str, enum.Enum):
    """How sure a rule is that gradients or parameters are lost."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True)
class Edit:
    """Replace the text from (line, column) to (end_line, end_column), 1-based, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    replacement: str


@dataclass(frozen=True)
class Fix:
    """An automatic fix a rule offers; `message` says in words what the edits do."""

    message: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Finding:
    """One reported problem. Lines and columns are 1-based; `end_column` is exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    code: str
    name: str
    severity: Severity
    message: str
    hint: str | None = None
    fix: Fix | None = None
    cell: int | None = None  # notebooks: the cell's position (from 1, all kinds); `line` in it

    @property
    def sort_key(self) -> tuple[str, int, int, int, str]:
        return (self.path, self.cell or 0, self.line, self.column, self.code)


@dataclass(frozen=True)
class FileResult:
    """Everything linting one file produced."""

    path: str
    findings: tuple[Finding, ...] = ()
    skipped: str | None = None  # reason the file was not linted at all (skip-file comment)
    source_lines: tuple[str, ...] = field(default=(), repr=False, compare=False)
    summary: FileSummary | None = field(default=None, repr=False, compare=False)
    # notebooks: 0-based index in `source_lines` where each cell (any kind) starts
    cell_starts: tuple[int, ...] = field(default=(), repr=False, compare=False)


def finding_as_dict(finding: Finding) -> dict[str, Any]:
    """A finding as plain JSON-ready data (the JSON output and the cache share it)."""
    data = asdict(finding)
    data["severity"] = finding.severity.value
    return data
