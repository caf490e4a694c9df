"""SARIF 2.1.0, the format GitHub code scanning uploads.

A notebook finding cannot point at a line of the `.ipynb` file (its lines are JSON): its
region is the file's first line, its message starts with `cell 4, line 3:`, and the result's
`properties` carry `cell`, `cellLine` and `cellColumn`.

Locations are URIs, percent-encoded (spaces, non-ASCII names). A file inside the repository
is named relative to its root with `"uriBaseId": "%SRCROOT%"`, which is how code scanning
matches alerts to files in the checkout; `originalUriBaseIds` says where that root was. A file
outside it gets an absolute `file://` URI.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gradlint import __version__
from gradlint.engine_codes import DOCS, SUMMARIES
from gradlint.findings import FileResult, Severity
from gradlint.registry import ENGINE_CODES

if TYPE_CHECKING:
    from gradlint.rule import Rule

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
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
    text = SUMMARIES[code][:1].upper() + SUMMARIES[code][1:]
    return {
        "id": code,
        "name": name,
        "shortDescription": {"text": text},
        "fullDescription": {"text": " ".join(DOCS[code].split())},
        "help": {"text": text, "markdown": DOCS[code].strip()},
        "helpUri": HELP_URI.format(code=code),
        "defaultConfiguration": {"level": "error"},
    }


def artifact_location(path: str, root: Path | None) -> dict[str, Any]:
    """The SARIF `artifactLocation` of a finding's path (as gradlint displays it).

    `root` is the repository root; without one, relative paths are taken to be relative to it
    already (the working folder)."""
    posix = path.replace("\\", "/")
    if root is None:
        if Path(path).is_absolute():
            return {"uri": Path(path).as_uri()}
        return {"uri": quote(posix), "uriBaseId": SRCROOT}
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(root)
    except ValueError:  # outside the repository: only an absolute URI can name it
        return {"uri": absolute.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": SRCROOT}


def render(
    results: Sequence[FileResult], rules: Sequence[type[Rule]], root: Path | None = None
) -> str:
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
                            "artifactLocation": artifact_location(f.path, root),
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
                **(
                    {"originalUriBaseIds": {SRCROOT: {"uri": root.as_uri().rstrip("/") + "/"}}}
                    if root is not None
                    else {}
                ),
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
