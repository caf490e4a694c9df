"""A JSON array of findings, one object each, for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from gradlint.findings import FileResult, Finding
from gradlint.rule import Rule


def as_dict(finding: Finding) -> dict[str, Any]:
    data = asdict(finding)
    data["severity"] = finding.severity.value
    return data


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    items = [as_dict(f) for result in results for f in result.findings]
    return json.dumps(items, indent=2) + "\n"
