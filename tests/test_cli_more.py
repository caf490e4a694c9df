"""The command line: top-level help, engine-code pages, JSON statistics, file modes, named
broken files and paths that hold control characters."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gradlint.cli import cli

BAD_MODEL = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "bad.py").write_text(BAD_MODEL, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_top_level_help_shows_the_linting_options_and_the_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    text = result.stdout
    assert "[OPTIONS] [PATHS]...\n" in text and "COMMAND [ARGS]..." in text
    for option in ("--select", "--format", "--fix", "--baseline", "--statistics", "--version"):
        assert option in text, option
    for command in ("check", "explain", "rules", "lsp", "probe", "clean"):
        assert f"\n  {command} " in text, command
    assert text.count("--help") == 1


@pytest.mark.parametrize(
    ("code", "name"), [("GL000", "internal-error"), ("gl001", "unreadable-file")]
)
def test_explain_engine_codes(code: str, name: str) -> None:
    result = run("explain", code)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# {code.upper()} {name}\n\nSeverity: error\n")
    assert "## What it does" in result.stdout and "## Why is this bad?" in result.stdout
    assert run("explain", name).stdout == result.stdout


def test_statistics_as_json(project: Path) -> None:
    (project / "bad2.py").write_text(BAD_MODEL, encoding="utf-8")
    (project / "broken.py").write_text("import torch\ndef f(:\n", encoding="utf-8")
    result = run("--statistics", "--format", "json", "--no-cache", ".")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {"code": "GL101", "name": "deep-saturating-stack", "count": 2, "fixable": False},
        {"code": "GL001", "name": "unreadable-file", "count": 1, "fixable": False},
    ]


@pytest.mark.usefixtures("umask_022")
def test_report_and_baseline_files_follow_the_umask(project: Path) -> None:
    run("--no-cache", "--format", "json", "-o", "report.json", "bad.py")
    run("--no-cache", "--write-baseline", "baseline.json", "bad.py")
    for name in ("report.json", "baseline.json"):
        assert stat.S_IMODE((project / name).stat().st_mode) == 0o644, name
    os.chmod(project / "report.json", 0o600)  # a mode the user chose is kept
    run("--no-cache", "--format", "json", "-o", "report.json", "bad.py")
    assert stat.S_IMODE((project / "report.json").stat().st_mode) == 0o600


def test_a_named_file_with_a_syntax_error_is_reported_without_torch(project: Path) -> None:
    (project / "notes.py").write_text("def f(:\n    pass\n", encoding="utf-8")
    (project / "plain.py").write_text("print('no torch here')\n", encoding="utf-8")
    named = run("--no-cache", "-q", "notes.py", "plain.py")
    assert named.exit_code == 1
    assert named.stdout == "notes.py:1:7: GL001 syntax error: invalid syntax\n"
    walked = run("--no-cache", "-q", "--select", "GL001", ".")  # a walk skips non-torch files
    assert walked.exit_code == 0, walked.output


def test_a_newline_in_a_path_cannot_break_a_concise_line(project: Path) -> None:
    odd = project / "a\nb\tc.py"
    odd.write_text(BAD_MODEL, encoding="utf-8")
    for output in ("concise", "full"):
        result = run("--no-cache", "-q", "--select", "GL101", "--format", output, str(odd.name))
        first = result.stdout.splitlines()[0]
        assert first.startswith("a\\nb\\tc.py:3:9: GL101 "), (output, first)
