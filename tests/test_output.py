"""Renderers: golden files over a fixed set of findings, plus structural checks per format."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gradlint import FileResult, Finding, Rule, Severity, Valid, __version__
from gradlint.cli import cli
from gradlint.output import RENDERERS

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
MATCHER = Path(__file__).resolve().parent.parent / "gradlint" / "data" / "problem-matcher.json"
CONCISE = r"^(.+?):(\d+):(\d+): (\w+) (.*)$"

BAD_MODEL = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""


class SnapshotRule(Rule):
    """
    ## What it does
    Flags a pattern used only by the renderer snapshots. It has a second sentence.

    ## Why is this bad?
    It is not; the docstring is fixed so golden files do not follow real rules' wording.
    """

    CODE = "GL190"
    SEVERITY = Severity.WARNING
    MESSAGE = "snapshot finding"
    HINT = "Do the other thing"
    VALID = [Valid("x = 1\n")]


def _finding(**fields: Any) -> Finding:
    base: dict[str, Any] = dict(
        path="pkg/model.py", line=3, column=9, end_line=3, end_column=23, code="GL190",
        name="snapshot-rule", severity=Severity.WARNING, message="snapshot finding",
        hint="Do the other thing",
    )
    base.update(fields)
    return Finding(**base)


MODEL_LINES = (
    "from torch import nn",
    "",
    "model = nn.Sequential(nn.Sigmoid(), nn.Sigmoid())",
    "\tout = model(x)  # a tab before the code",
    "loss = out.sum()",
)

RESULTS = (
    FileResult(
        path="pkg/model.py",
        findings=(
            _finding(),
            _finding(line=4, column=2, end_line=5, end_column=6, severity=Severity.ERROR,
                     message="an error spanning two lines", hint=None),
            _finding(line=5, column=1, end_line=5, end_column=1, severity=Severity.INFO,
                     message="odd text: 100% sure, a,b:c\nsecond line"),
        ),
        source_lines=MODEL_LINES,
    ),
    FileResult(path="pkg/clean.py"),
    FileResult(path="pkg/skipped.py", skipped="gradlint: skip-file"),
    FileResult(
        path="pkg/broken.py",
        findings=(
            Finding(path="pkg/broken.py", line=2, column=5, end_line=2, end_column=5, code="GL001",
                    name="unreadable-file", severity=Severity.ERROR,
                    message="syntax error: '(' was never closed"),
        ),
    ),
)

ALL_FINDINGS = [f for result in RESULTS for f in result.findings]


def _render(name: str) -> str:
    text = RENDERERS[name](RESULTS, [SnapshotRule])
    return text.replace(f'"version": "{__version__}"', '"version": "<version>"')


def assert_snapshot(name: str, text: str) -> None:
    """Compare with tests/snapshots/<name>; GRADLINT_UPDATE_SNAPSHOTS=1 rewrites the file."""
    path = SNAPSHOTS / name
    if os.environ.get("GRADLINT_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        return
    assert path.is_file(), f"missing golden file {path}; run with GRADLINT_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


SUFFIX = {"concise": "txt", "full": "txt", "github": "txt", "gitlab": "json", "json": "json",
          "sarif": "sarif"}


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_renderer_matches_golden_file(name: str) -> None:
    assert_snapshot(f"render_{name}.{SUFFIX[name]}", _render(name))


def test_every_renderer_has_a_golden_file() -> None:
    assert set(RENDERERS) == set(SUFFIX)


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_renderers_handle_no_results(name: str) -> None:
    text = RENDERERS[name]([], [SnapshotRule])
    if name in ("json", "gitlab"):
        assert json.loads(text) == []
    elif name == "sarif":
        assert json.loads(text)["runs"][0]["results"] == []
    else:
        assert text == ""


# -- concise -----------------------------------------------------------------------------


def test_concise_lines_match_the_documented_regex() -> None:
    lines = _render("concise").splitlines()
    assert len(lines) == len(ALL_FINDINGS)
    for line, finding in zip(lines, ALL_FINDINGS):
        match = re.match(CONCISE, line)
        assert match, line
        assert match.groups()[:4] == (
            finding.path, str(finding.line), str(finding.column), finding.code
        )


def test_concise_keeps_a_multiline_message_on_one_line() -> None:
    lines = _render("concise").splitlines()
    assert lines[2].endswith("GL190 odd text: 100% sure, a,b:c second line")


# -- problem matcher ---------------------------------------------------------------------


def _matcher_pattern() -> dict[str, Any]:
    document = json.loads(MATCHER.read_text(encoding="utf-8"))
    (matcher,) = document["problemMatcher"]
    assert matcher["owner"] == "gradlint"
    (pattern,) = matcher["pattern"]
    return dict(pattern)


def test_problem_matcher_uses_the_concise_regex() -> None:
    pattern = _matcher_pattern()
    assert pattern["regexp"] == CONCISE
    assert {k: pattern[k] for k in ("file", "line", "column", "code", "message")} == {
        "file": 1, "line": 2, "column": 3, "code": 4, "message": 5,
    }


def test_problem_matcher_reads_real_cli_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "net.py").write_text(BAD_MODEL, encoding="utf-8")
    (tmp_path / "broken.py").write_text("from torch import nn\nx = (\n", encoding="utf-8")
    (tmp_path / "clean.py").write_text("from torch import nn\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--format", "concise", "."])
    assert result.exit_code == 1, result.output
    pattern = _matcher_pattern()
    regexp = re.compile(pattern["regexp"])
    lines = result.output.splitlines()
    finding_lines, summary = lines[:-1], lines[-1]
    assert summary.startswith("Found 2 findings")
    assert regexp.match(summary) is None
    captured = []
    for line in finding_lines:
        match = regexp.match(line)
        assert match, f"problem matcher misses: {line}"
        captured.append(
            (match.group(pattern["file"]), int(match.group(pattern["line"])),
             int(match.group(pattern["column"])), match.group(pattern["code"]))
        )
        assert match.group(pattern["message"])
    assert captured == [("broken.py", 2, 5, "GL001"), ("net.py", 3, 9, "GL101")]


def test_problem_matcher_ignores_the_clean_summary(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("from torch import nn\n", encoding="utf-8")
    result = CliRunner().invoke(cli, [str(tmp_path / "ok.py")])
    assert result.exit_code == 0
    assert result.output.startswith("All checks passed!")
    assert re.match(_matcher_pattern()["regexp"], result.output.strip()) is None


# -- json --------------------------------------------------------------------------------


def test_json_has_the_documented_fields() -> None:
    items = json.loads(_render("json"))
    assert len(items) == len(ALL_FINDINGS)
    required = {"path", "line", "column", "end_line", "end_column", "code", "name", "severity",
                "message", "fix"}
    for item, finding in zip(items, ALL_FINDINGS):
        assert required <= set(item)
        assert item["severity"] in ("error", "warning", "info")
        assert item["fix"] is None
        assert (item["path"], item["line"], item["column"], item["end_line"],
                item["end_column"], item["code"], item["name"], item["message"]) == (
            finding.path, finding.line, finding.column, finding.end_line,
            finding.end_column, finding.code, finding.name, finding.message)
        assert all(isinstance(item[k], int) for k in ("line", "column", "end_line", "end_column"))


# -- github ------------------------------------------------------------------------------

_GITHUB = re.compile(
    r"^::(?P<level>error|warning|notice) file=(?P<file>[^,]*),line=(?P<line>\d+),col=(?P<col>\d+),"
    r"endLine=(?P<end_line>\d+),endColumn=(?P<end_col>\d+),title=(?P<title>[^,]*)::(?P<msg>.*)$"
)


def _unescape(text: str) -> str:
    return (text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":")
            .replace("%2C", ",").replace("%25", "%"))


def test_github_annotations_are_workflow_commands() -> None:
    lines = _render("github").splitlines()
    assert len(lines) == len(ALL_FINDINGS)
    expected_level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
    for line, finding in zip(lines, ALL_FINDINGS):
        match = _GITHUB.match(line)
        assert match, line
        assert match["level"] == expected_level[finding.severity]
        assert _unescape(match["file"]) == finding.path
        assert (int(match["line"]), int(match["col"]), int(match["end_line"]),
                int(match["end_col"])) == (finding.line, finding.column, finding.end_line,
                                           finding.end_column)
        assert _unescape(match["title"]) == f"{finding.code} {finding.name}"
        assert _unescape(match["msg"]) == finding.message


def test_github_escapes_newlines_and_percent_signs() -> None:
    line = _render("github").splitlines()[2]
    assert line.endswith("::odd text: 100%25 sure, a,b:c%0Asecond line")


# -- sarif -------------------------------------------------------------------------------


def check_sarif(document: dict[str, Any]) -> None:
    """The parts of SARIF 2.1.0 that GitHub code scanning requires or reads.

    This is a hand-written structural check: the official JSON schema is not reachable from
    the test machines. Validating against the vendored schema with `jsonschema` is a later item.
    """
    assert document["version"] == "2.1.0"
    assert "sarif" in document["$schema"] and "2.1.0" in document["$schema"]
    assert isinstance(document["runs"], list) and document["runs"]
    for run in document["runs"]:
        driver = run["tool"]["driver"]
        assert isinstance(driver["name"], str) and driver["name"]
        rules = driver["rules"]
        ids = [rule["id"] for rule in rules]
        assert len(ids) == len(set(ids)), "rule ids must be unique"
        for rule in rules:
            assert isinstance(rule["id"], str) and rule["id"]
            assert rule["shortDescription"]["text"]
            assert rule["help"]["text"]
            if "fullDescription" in rule:
                assert rule["fullDescription"]["text"]
            level = rule.get("defaultConfiguration", {}).get("level", "warning")
            assert level in ("none", "note", "warning", "error")
        assert isinstance(run["results"], list)
        for result in run["results"]:
            assert result["ruleId"] in ids
            if "ruleIndex" in result:
                assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            assert result["level"] in ("none", "note", "warning", "error")
            assert isinstance(result["message"]["text"], str) and result["message"]["text"]
            assert result["locations"], "code scanning needs at least one location"
            for location in result["locations"]:
                physical = location["physicalLocation"]
                uri = physical["artifactLocation"]["uri"]
                assert isinstance(uri, str) and uri and "\\" not in uri
                region = physical["region"]
                assert isinstance(region["startLine"], int) and region["startLine"] >= 1
                for key in ("startColumn", "endLine", "endColumn"):
                    if key in region:
                        assert isinstance(region[key], int) and region[key] >= 1, key
                end_line = region.get("endLine", region["startLine"])
                assert end_line >= region["startLine"]
                if end_line == region["startLine"] and "endColumn" in region:
                    assert region["endColumn"] >= region.get("startColumn", 1)


def test_sarif_is_what_code_scanning_accepts() -> None:
    document = json.loads(_render("sarif"))
    check_sarif(document)
    results = document["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == [f.code for f in ALL_FINDINGS]
    assert [r["level"] for r in results] == ["warning", "error", "note", "error"]
    first = results[0]["locations"][0]["physicalLocation"]
    assert first["artifactLocation"]["uri"] == "pkg/model.py"
    assert first["region"] == {"startLine": 3, "startColumn": 9, "endLine": 3, "endColumn": 23}
    rules = {rule["id"]: rule for rule in document["runs"][0]["tool"]["driver"]["rules"]}
    assert {"GL190", "GL000", "GL001"} <= set(rules)
    assert "Why is this bad?" in rules["GL190"]["help"]["markdown"]


def test_sarif_from_the_cli_is_valid(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(BAD_MODEL, encoding="utf-8")
    result = CliRunner().invoke(cli, ["--format", "sarif", str(tmp_path)])
    assert result.exit_code == 1
    document = json.loads(result.output)
    check_sarif(document)
    (entry,) = document["runs"][0]["results"]
    assert entry["ruleId"] == "GL101"
    assert entry["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    descriptors = document["runs"][0]["tool"]["driver"]["rules"]
    assert any(d["id"] == "GL101" and d["help"]["text"] for d in descriptors)


def test_sarif_check_can_fail() -> None:
    document = json.loads(_render("sarif"))
    del document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"]
    with pytest.raises(KeyError):
        check_sarif(document)
    document = json.loads(_render("sarif"))
    document["runs"][0]["results"][0]["ruleId"] = "GL999"
    with pytest.raises(AssertionError):
        check_sarif(document)
