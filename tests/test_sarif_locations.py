"""SARIF locations as GitHub code scanning reads them, checked by the JSON schema and by
Microsoft's SARIF multitool (with its GitHub ingestion rules)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gradlint.cli import cli

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parent / "examples" / "notebooks" / "char_rnn.ipynb"
MULTITOOL_HOME = Path.home() / ".cache" / "gradlint-sarif-multitool"
INSTALL = (
    f"npm install --prefix {MULTITOOL_HOME} @microsoft/sarif-multitool "
    "(or set GRADLINT_SARIF_MULTITOOL to its Sarif.Multitool program)"
)
BAD = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""


@pytest.fixture
def sarif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run from a subfolder of a repository over awkward names, a notebook, a broken file and a
    file outside the repository."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    spaced = repo / "my models" / "modèle réseau.py"
    spaced.parent.mkdir()
    spaced.write_text(BAD, encoding="utf-8")
    (repo / "src" / "broken.py").write_text("import torch\ndef f(:\n", encoding="utf-8")
    shutil.copy(NOTEBOOK, repo / "src" / "char rnn.ipynb")
    outside = tmp_path / "elsewhere" / "net.py"
    outside.parent.mkdir()
    outside.write_text(BAD, encoding="utf-8")
    monkeypatch.chdir(repo / "src")
    args = ["--format", "sarif", "--no-cache", "--preview", "-o", "out.sarif",
            "../my models", "broken.py", "char rnn.ipynb", str(outside)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    document: dict[str, Any] = json.loads((repo / "src" / "out.sarif").read_text("utf-8"))
    return document


def test_uris_are_percent_encoded_and_relative_to_the_repository(sarif: dict[str, Any]) -> None:
    run = sarif["runs"][0]
    root = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert root.startswith("file:///") and root.endswith("/repo/")
    locations = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]:
        r["locations"][0]["physicalLocation"]["artifactLocation"].get("uriBaseId")
        for r in run["results"]
    }
    assert locations.pop("my%20models/mod%C3%A8le%20r%C3%A9seau.py") == "%SRCROOT%"
    assert locations.pop("src/broken.py") == "%SRCROOT%"
    assert locations.pop("src/char%20rnn.ipynb") == "%SRCROOT%"
    ((absolute, base),) = locations.items()
    assert absolute.startswith("file:///") and absolute.endswith("/elsewhere/net.py")
    assert base is None


def test_every_rule_entry_has_a_full_description_and_help_uri(sarif: dict[str, Any]) -> None:
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert {"GL000", "GL001", "GL101"} <= {rule["id"] for rule in rules}
    for rule in rules:
        assert rule["fullDescription"]["text"], rule["id"]
        assert rule["helpUri"].endswith(f"docs/rules/{rule['id']}.md"), rule["id"]
        assert (HERE.parent / "docs" / "rules" / f"{rule['id']}.md").is_file(), rule["id"]


def test_the_schema_accepts_it(sarif: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
    schema = json.loads((HERE / "schemas" / "sarif-2.1.0.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(sarif)]
    assert not errors, errors[:5]


def _multitool() -> Path:
    named = os.environ.get("GRADLINT_SARIF_MULTITOOL")
    if named:
        return Path(named)
    platform = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform, "")
    program = "Sarif.Multitool.exe" if platform == "win32" else "Sarif.Multitool"
    installed = MULTITOOL_HOME / "node_modules" / "@microsoft" / f"sarif-multitool-{platform}"
    if (installed / program).is_file():
        return installed / program
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(f"node/npm are not installed, so the SARIF multitool is missing; {INSTALL}")
    pytest.skip(f"the SARIF multitool is not installed; {INSTALL}")


def test_the_sarif_multitool_accepts_it_with_the_github_rules(
    sarif: dict[str, Any], tmp_path: Path
) -> None:
    program = _multitool()
    target, report = tmp_path / "gradlint.sarif", tmp_path / "validation.sarif"
    target.write_text(json.dumps(sarif), encoding="utf-8")
    done = subprocess.run(
        [str(program), "validate", "--rule-kind", "Sarif;Gh", "--level", "Error;Warning",
         "--log", "ForceOverwrite", "--output", str(report), str(target)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "DOTNET_CLI_TELEMETRY_OPTOUT": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    validation = json.loads(report.read_text(encoding="utf-8-sig"))
    problems = [
        (r["ruleId"], r.get("level"), r["message"].get("arguments"))
        for r in validation["runs"][0].get("results", [])
        if r.get("level", "warning") in ("error", "warning")
    ]
    assert problems == []
