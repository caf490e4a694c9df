"""A JSON array of findings, one object each, for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gradlint.findings import FileResult, finding_as_dict

if TYPE_CHECKING:
    from gradlint.rule import Rule


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    items = [finding_as_dict(f) for result in results for f in result.findings]
    return json.dumps(items, indent=2) + "\n"
