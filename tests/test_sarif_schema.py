"""`--format sarif` validated against the official SARIF 2.1.0 JSON schema (vendored)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gradlint.cli import cli

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")

HERE = Path(__file__).resolve().parent
SCHEMA = json.loads((HERE / "schemas" / "sarif-2.1.0.json").read_text(encoding="utf-8"))
EXAMPLES = HERE.parent / "examples"


def _validate(document: dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def _sarif(*paths: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["--format", "sarif", "--no-cache", "--preview", *map(str, paths)]
    )
    assert result.exit_code in (0, 1), result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def test_sarif_of_the_examples_is_schema_valid(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    (tmp_path / "examples" / "broken.py").write_text("import torch\ndef f(:\n", encoding="utf-8")
    document = _sarif(tmp_path / "examples")
    results = document["runs"][0]["results"]
    assert {"GL001", "GL101", "GL104"} <= {r["ruleId"] for r in results}
    assert any("cell" in r.get("properties", {}) for r in results)  # the example notebook
    _validate(document)


def test_empty_sarif_is_schema_valid(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 1\n", encoding="utf-8")
    _validate(_sarif(tmp_path / "ok.py"))


def test_the_schema_catches_a_broken_document(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 1\n", encoding="utf-8")
    document = _sarif(tmp_path / "ok.py")
    document["runs"][0]["results"] = [{"ruleId": "GL101", "level": "fatal", "message": {}}]
    with pytest.raises(AssertionError, match="level|text"):
        _validate(document)
