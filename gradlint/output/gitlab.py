"""GitLab code quality report: the Code Climate JSON subset GitLab reads.

Each issue has `description`, `check_name`, `fingerprint`, `severity` and
`location.path` / `location.lines.begin`. The fingerprint is the baseline's (file, code and
the code around the finding), with a counter for identical findings, so GitLab tracks an
issue across commits even when lines move. Notebook findings report the line within the
cell and start their description with `cell N, line L:`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gradlint.baseline import fingerprint
from gradlint.findings import FileResult, Severity

if TYPE_CHECKING:
    from gradlint.rule import Rule

_SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.INFO: "info"}


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    issues: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()
    for result in results:
        for f in result.findings:
            base = f"{f.path}\0{fingerprint(result, f)}"
            seen[base] += 1
            digest = hashlib.sha256(f"{base}\0{seen[base]}".encode("utf-8", "surrogateescape"))
            where = f"cell {f.cell}, line {f.line}: " if f.cell is not None else ""
            issues.append(
                {
                    "type": "issue",
                    "description": f"{f.code} {where}{' '.join(f.message.split())}",
                    "check_name": f"{f.code} {f.name}",
                    "fingerprint": digest.hexdigest(),
                    "severity": _SEVERITY[f.severity],
                    "categories": ["Bug Risk"],
                    "location": {"path": f.path, "lines": {"begin": f.line, "end": f.end_line}},
                }
            )
    return json.dumps(issues, indent=2) + "\n"
