"""The command line: arguments, selection flags, formats, stdin, subcommands and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import gradlint.cli
from gradlint import __version__
from gradlint.cli import cli

# GL101 fires on four sigmoids in one nn.Sequential, reported at the call (line 3, column 9).
BAD_MODEL = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""
GOOD_MODEL = BAD_MODEL.replace("Sigmoid", "ReLU")
GL101_AT = "3:9: GL101 "


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """Exit 2, a single `gradlint: error:` line on stderr with the fragments, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gradlint: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with one bad and one good model, as the working directory."""
    (tmp_path / "bad.py").write_text(BAD_MODEL, encoding="utf-8")
    (tmp_path / "good.py").write_text(GOOD_MODEL, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- exit codes and paths ----------------------------------------------------------------


def test_findings_exit_1(project: Path) -> None:
    result = run("--select", "GL101", "bad.py")
    assert result.exit_code == 1
    first, summary = result.stdout.splitlines()
    assert first.startswith(f"bad.py:{GL101_AT}") and len(first) > len("bad.py:3:9: GL101 ")
    assert summary == "Found 1 finding in 1 file (1 checked)."
    assert result.stderr == ""


def test_clean_file_exits_0(project: Path) -> None:
    result = run("--select", "GL101", "good.py")
    assert result.exit_code == 0
    assert result.stdout == "All checks passed! (1 file checked)\n"


def test_default_path_is_the_working_folder(project: Path) -> None:
    result = run("--select", "GL101")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"bad.py:{GL101_AT}")
    assert "(2 checked)" in result.stdout


def test_check_subcommand_is_the_same(project: Path) -> None:
    assert run("check", "--select", "GL101", ".").stdout == run("--select", "GL101", ".").stdout


def test_missing_path_is_a_one_line_error(project: Path) -> None:
    result = run("does-not-exist.py")
    assert_one_line_error(result, "does-not-exist.py", "no such file or directory")
    assert result.stdout == ""


def test_unknown_option_is_a_usage_error(project: Path) -> None:
    result = run("--no-such-flag")
    assert result.exit_code == 2
    assert "No such option" in result.stderr
    assert "Traceback" not in result.output


def test_bad_format_choice_exits_2(project: Path) -> None:
    result = run("--format", "xml", "bad.py")
    assert result.exit_code == 2
    assert "xml" in result.stderr


def test_exit_zero_still_reports(project: Path) -> None:
    result = run("--select", "GL101", "--exit-zero", "bad.py")
    assert result.exit_code == 0
    assert f"bad.py:{GL101_AT}" in result.stdout


def test_quiet_drops_the_summary(project: Path) -> None:
    result = run("--select", "GL101", "-q", "bad.py")
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith(f"bad.py:{GL101_AT}")
    assert run("--select", "GL101", "--quiet", "good.py").stdout == ""


def test_statistics_counts_per_rule(project: Path) -> None:
    (project / "bad2.py").write_text(BAD_MODEL, encoding="utf-8")
    result = run("--select", "GL101", "--statistics", ".")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["2", "GL101", "deep-saturating-stack"]
    assert lines[1] == "Found 2 findings in 2 files (3 checked)."


def test_output_file(project: Path) -> None:
    result = run("--select", "GL101", "--format", "json", "-o", "out/report.json", "bad.py")
    assert result.exit_code == 1
    assert result.stdout == ""
    (item,) = json.loads((project / "out" / "report.json").read_text(encoding="utf-8"))
    assert item["code"] == "GL101"


def test_linting_never_writes_to_the_linted_files(project: Path) -> None:
    files = sorted(project.iterdir())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    for output in ("concise", "full", "json", "github", "sarif"):
        assert run("--format", output, ".").exit_code == 1
    created = sorted(p for p in project.iterdir() if p.name != ".gradlint_cache")
    assert created == files, "gradlint created files next to the sources (besides its cache)"
    assert (project / ".gradlint_cache" / ".gitignore").is_file()
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


# -- selection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "reported"),
    [
        (["--select", "GL101"], True),
        (["--select", "GL1"], True),  # prefix
        (["--select", "GL"], True),
        (["--select", "deep-saturating-stack"], True),  # kebab name
        (["--select", "gl101"], True),
        (["--select", "GL0"], False),
        (["--select", "GL0,GL101"], True),  # comma-separated
        (["--select", "GL101", "--ignore", "GL1"], True),  # the more specific selector wins
        (["--ignore", "GL1", "--select", "GL101"], True),
        (["--select", "GL1", "--ignore", "GL101"], False),
        (["--select", "GL101", "--ignore", "deep-saturating-stack"], False),
        (["--select", "GL0", "--extend-select", "GL101"], True),
        (["--ignore", "GL101"], False),
        (["--ignore", "ALL"], False),
    ],
)
def test_selection(project: Path, flags: list[str], reported: bool) -> None:
    result = run(*flags, "bad.py")
    assert (GL101_AT in result.stdout) is reported, result.output
    assert result.exit_code == (1 if reported else 0)


@pytest.mark.parametrize("flag", ["--select", "--ignore", "--extend-select"])
def test_unknown_selector_names_the_flag(project: Path, flag: str) -> None:
    result = run(flag, "GL9", "bad.py")
    assert_one_line_error(result, flag, "GL9")


def test_misspelt_rule_name_suggests_the_real_one(project: Path) -> None:
    result = run("--select", "deep-saturating-stak", "bad.py")
    assert_one_line_error(result, "deep-saturating-stak", "did you mean 'deep-saturating-stack'")


def test_command_line_wins_over_the_file(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.gradlint]\nignore = ["GL101"]\n')
    assert run("bad.py").exit_code == 0
    result = run("--select", "GL101", "bad.py")
    assert result.exit_code == 0, "ignore from the file still applies; --select adds nothing"
    result = run("--extend-select", "GL101", "--ignore", "GL0", "bad.py")
    assert result.exit_code == 0, "--ignore extends the file's ignore list"
    (project / "pyproject.toml").write_text('[tool.gradlint]\nselect = ["GL0"]\n')
    assert run("bad.py").exit_code == 0
    assert run("--select", "GL101", "bad.py").exit_code == 1


# -- formats -----------------------------------------------------------------------------


def test_format_full_shows_source_and_caret(project: Path) -> None:
    result = run("--select", "GL101", "--format", "full", "bad.py")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"bad.py:{GL101_AT}")
    assert lines[2] == "3 | model = nn.Sequential("
    assert lines[3].startswith("  |         ^") and lines[3].endswith(" warning")
    assert any(line.startswith("  = help: ") for line in lines)


def test_format_json(project: Path) -> None:
    result = run("--select", "GL101", "--format", "json", ".")
    assert result.exit_code == 1
    (item,) = json.loads(result.stdout)
    assert {k: item[k] for k in ("path", "line", "column", "end_line", "end_column")} == {
        "path": "bad.py", "line": 3, "column": 9, "end_line": 8, "end_column": 2,
    }
    assert (item["code"], item["name"], item["severity"]) == (
        "GL101", "deep-saturating-stack", "warning"
    )
    assert item["fix"] is None and item["message"]


def test_format_json_clean_is_an_empty_array(project: Path) -> None:
    result = run("--select", "GL101", "--format", "json", "good.py")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_format_github(project: Path) -> None:
    result = run("--select", "GL101", "--format", "github", "bad.py")
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(
        "::warning file=bad.py,line=3,col=9,endLine=8,endColumn=2,"
        "title=GL101 deep-saturating-stack::"
    )


def test_format_github_uses_error_for_error_severity(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.gradlint]\nseverity = { GL101 = "error" }\n')
    result = run("--select", "GL101", "--format", "github", "bad.py")
    assert result.stdout.startswith("::error file=bad.py,line=3,col=9,")


def test_format_sarif(project: Path) -> None:
    result = run("--select", "GL101", "--format", "sarif", "bad.py")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["version"] == "2.1.0"
    (entry,) = document["runs"][0]["results"]
    assert entry["ruleId"] == "GL101" and entry["level"] == "warning"
    location = entry["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "bad.py"
    assert location["region"]["startLine"] == 3


@pytest.mark.parametrize("output", ["json", "github", "sarif"])
def test_machine_formats_have_no_summary(project: Path, output: str) -> None:
    result = run("--format", output, "good.py")
    assert "checks passed" not in result.stdout and "Found" not in result.stdout


# -- stdin -------------------------------------------------------------------------------


def test_stdin_filename_names_the_findings(project: Path) -> None:
    result = run("--select", "GL101", "--stdin-filename", "pkg/net.py", input=BAD_MODEL)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"pkg/net.py:{GL101_AT}")
    assert "(1 checked)" in result.stdout


def test_stdin_clean(project: Path) -> None:
    result = run("--select", "GL101", "--stdin-filename", "net.py", input=GOOD_MODEL)
    assert result.exit_code == 0


def test_stdin_dash(project: Path) -> None:
    result = run("--select", "GL101", "-", input=BAD_MODEL.encode())
    assert result.exit_code == 1
    assert result.stdout.startswith(f"-:{GL101_AT}")


def test_stdin_filename_applies_per_file_ignores(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.gradlint]\nper-file-ignores = { "legacy/*.py" = ["GL101"] }\n'
    )
    assert run("--stdin-filename", "legacy/net.py", input=BAD_MODEL).exit_code == 0
    result = run("--select", "GL101", "--stdin-filename", "new/net.py", input=BAD_MODEL)
    assert result.exit_code == 1


def test_stdin_syntax_error_is_gl001(project: Path) -> None:
    result = run("--stdin-filename", "x.py", input="def f(:\n")
    assert result.exit_code == 1
    assert result.stdout.startswith("x.py:1:7: GL001 syntax error")


# -- unreadable input --------------------------------------------------------------------


def test_syntax_error_is_gl001_and_the_rest_is_linted(project: Path) -> None:
    (project / "broken.py").write_text("from torch import nn\nx = (\n", encoding="utf-8")
    result = run("--select", "GL101,GL001", ".")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("bad.py:3:9: GL101 ")
    assert lines[1].startswith("broken.py:2:5: GL001 syntax error")
    assert lines[2] == "Found 2 findings in 2 files (3 checked)."
    assert "Traceback" not in result.output


def test_non_utf8_file_is_gl001(project: Path) -> None:
    (project / "latin.py").write_bytes(b"from torch import nn\nname = 'caf\xe9'\n")
    result = run("--select", "GL101,GL001", ".")
    assert result.exit_code == 1
    assert "latin.py:2:1: GL001 file is not valid text" in result.stdout
    assert f"bad.py:{GL101_AT}" in result.stdout


def test_latin1_file_with_coding_line_parses(project: Path) -> None:
    source = "# -*- coding: latin-1 -*-\n" + BAD_MODEL.replace("model =", "café =")
    (project / "latin.py").write_bytes(source.encode("latin-1"))
    result = run("--select", "GL101,GL001", "latin.py")
    assert result.exit_code == 1
    assert result.stdout.startswith("latin.py:4:8: GL101 ")
    assert "GL001" not in result.stdout


def test_empty_file_is_clean(project: Path) -> None:
    (project / "empty.py").write_bytes(b"")
    result = run("empty.py")
    assert result.exit_code == 0
    assert result.stdout == "All checks passed! (1 file checked)\n"


def test_bom_file_is_linted_with_normal_positions(project: Path) -> None:
    (project / "bom.py").write_bytes(b"\xef\xbb\xbf" + BAD_MODEL.encode())
    result = run("--select", "GL101,GL001", "bom.py")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"bom.py:{GL101_AT}")


def test_unreadable_file_is_gl001(project: Path) -> None:
    (project / "gone.py").symlink_to(project / "missing-target.py")
    result = run("--select", "GL101,GL001", ".")
    assert result.exit_code == 1
    assert "gone.py:1:1: GL001 cannot read file" in result.stdout
    assert f"bad.py:{GL101_AT}" in result.stdout


def test_internal_error_has_no_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gradlint.cli, "lint_tree", explode)
    monkeypatch.setattr(sys, "argv", ["gradlint", "bad.py"])
    with pytest.raises(SystemExit) as exit_info:
        gradlint.cli.main()
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == "gradlint: internal error: RuntimeError: disk on fire\n"
    assert "Traceback" not in captured.out + captured.err


# -- subcommands -------------------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"gradlint {__version__}\n"


def test_python_dash_m_version(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "gradlint", "--version"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"gradlint {__version__}\n"


def test_python_dash_m_lints(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(BAD_MODEL, encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "gradlint", "--select", "GL101", "bad.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert completed.returncode == 1, completed.stderr
    assert completed.stdout.startswith(f"bad.py:{GL101_AT}")


def test_rules_lists_every_rule() -> None:
    result = run("rules")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    codes = [row[0] for row in rows]
    assert codes == sorted(codes)
    assert ["GL101", "deep-saturating-stack", "warning"] == rows[codes.index("GL101")][:3]


def test_rules_is_a_command_even_beside_a_rules_folder(project: Path) -> None:
    (project / "rules").mkdir()
    (project / "rules" / "net.py").write_text(BAD_MODEL, encoding="utf-8")
    assert run("rules").stdout.startswith("GL")
    result = run("--select", "GL101", "./rules")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"rules/net.py:{GL101_AT}")


@pytest.mark.parametrize("name", ["GL101", "gl101", "deep-saturating-stack"])
def test_explain(name: str) -> None:
    result = run("explain", name)
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith("# GL101 deep-saturating-stack\n")
    assert "Severity: warning" in text
    for heading in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
        assert heading in text
    example = text.split("## Example", 1)[1].split("## Use instead", 1)[0]
    assert "```python" in example and "nn.Sigmoid()" in example
    assert "- `depth` (default `4`)" in text


def test_explain_unknown_rule() -> None:
    result = run("explain", "GL999")
    assert_one_line_error(result, "GL999", "gradlint rules")


def test_help_mentions_the_options() -> None:
    result = run("check", "--help")
    assert result.exit_code == 0
    for option in ("--select", "--ignore", "--extend-select", "--format", "--exit-zero",
                   "--statistics", "--config", "--quiet", "--stdin-filename"):
        assert option in result.stdout


# -- end to end over tests/fixtures/project ----------------------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def assert_snapshot(name: str, text: str) -> None:
    """Compare with tests/snapshots/<name>; GRADLINT_UPDATE_SNAPSHOTS=1 rewrites the file."""
    path = SNAPSHOTS / name
    if os.environ.get("GRADLINT_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8", newline="\n")
        return
    assert path.is_file(), f"missing golden file {path}; run with GRADLINT_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.fixture
def fixture_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of tests/fixtures/project as the working folder (the run must not see the repo)."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "project", root)
    monkeypatch.chdir(root)
    return root


def test_fixture_project_end_to_end(fixture_project: Path) -> None:
    """Config, default and configured excludes, per-file-ignores, noqa, skip-file and GL001."""
    before = {p: p.read_bytes() for p in fixture_project.rglob("*") if p.is_file()}
    result = run("--select", "GL101,GL001")
    assert result.exit_code == 1
    assert_snapshot("project_concise.txt", result.stdout)
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["src/broken.py", "src/model.py"]
    assert lines[-1] == "Found 2 findings in 2 files (6 checked)."
    after = {
        p: p.read_bytes()
        for p in fixture_project.rglob("*")
        if p.is_file() and ".gradlint_cache" not in p.parts
    }
    assert after == before


def test_fixture_project_json(fixture_project: Path) -> None:
    result = run("--select", "GL101,GL001", "--format", "json", "src")
    assert result.exit_code == 1
    items = json.loads(result.stdout)
    assert [(i["path"], i["line"], i["column"], i["code"]) for i in items] == [
        ("src/broken.py", 3, 10, "GL001"), ("src/model.py", 5, 12, "GL101"),
    ]
