"""SARIF 2.1.0, the format GitHub code scanning uploads.

A notebook finding cannot point at a line of the `.ipynb` file (its lines are JSON): its
region is the file's first line, its message starts with `cell 4, line 3:`, and the result's
`properties` carry `cell`, `cellLine` and `cellColumn`.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gradlint import __version__
from gradlint.findings import FileResult, Severity
from gradlint.registry import ENGINE_CODES

if TYPE_CHECKING:
    from gradlint.rule import Rule

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
HELP_URI = "https://github.com/gradlint/gradlint/blob/main/docs/rules/{code}.md"


def _rule_descriptor(rule: type[Rule]) -> dict[str, Any]:
    doc = " ".join((rule.__doc__ or "").split())
    return {
        "id": rule.CODE,
        "name": rule.name(),
        "shortDescription": {"text": rule.summary()},
        "fullDescription": {"text": doc or rule.summary()},
        "help": {
            "text": f"{rule.summary()} {rule.HINT or ''}".strip(),
            "markdown": _markdown(rule),
        },
        "helpUri": HELP_URI.format(code=rule.CODE),
        "defaultConfiguration": {"level": _LEVEL[rule.SEVERITY]},
        "properties": {"tags": ["pytorch", "gradient-flow"]},
    }


def _markdown(rule: type[Rule]) -> str:
    return textwrap.dedent(rule.__doc__ or "").strip()


def _engine_descriptor(code: str, name: str) -> dict[str, Any]:
    if code == "GL001":
        text = "gradlint could not analyse this file"
    else:
        text = "gradlint failed internally"
    return {
        "id": code,
        "name": name,
        "shortDescription": {"text": text},
        "help": {"text": text},
        "defaultConfiguration": {"level": "error"},
    }


def render(results: Sequence[FileResult], rules: Sequence[type[Rule]]) -> str:
    descriptors = [_rule_descriptor(rule) for rule in rules]
    descriptors += [_engine_descriptor(code, name) for code, name in ENGINE_CODES.items()]
    positions = {d["id"]: i for i, d in enumerate(descriptors)}
    sarif_results = []
    for result in results:
        for f in result.findings:
            text = f.message + (f" {f.hint}." if f.hint else "")
            region = {
                "startLine": f.line,
                "startColumn": f.column,
                "endLine": f.end_line,
                "endColumn": max(f.end_column, f.column),
            }
            if f.cell is not None:
                text = f"cell {f.cell}, line {f.line}: {text}"
                region = {"startLine": 1}
            entry: dict[str, Any] = {
                "ruleId": f.code,
                "level": _LEVEL[f.severity],
                "message": {"text": text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f.path.replace("\\", "/")},
                            "region": region,
                        }
                    }
                ],
            }
            if f.cell is not None:
                entry["properties"] = {"cell": f.cell, "cellLine": f.line, "cellColumn": f.column}
            if f.code in positions:
                entry["ruleIndex"] = positions[f.code]
            sarif_results.append(entry)
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gradlint",
                        "version": __version__,
                        "informationUri": "https://github.com/gradlint/gradlint",
                        "rules": descriptors,
                    }
                },
                "results": sarif_results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
