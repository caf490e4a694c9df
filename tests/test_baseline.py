"""Baselines: record the findings of today, fail only on new ones; terminal niceties."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import gradlint.cli
from gradlint.cli import cli
from gradlint.output.color import use_color
from gradlint.output.progress import Progress

BAD = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""
OTHER_BAD = """\
from torch import nn

head = nn.Sequential(
    nn.Linear(4, 4), nn.Hardsigmoid(),
    nn.Linear(4, 4), nn.Hardsigmoid(),
    nn.Linear(4, 4), nn.Hardsigmoid(),
    nn.Linear(4, 4), nn.Hardsigmoid(),
)
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--no-cache", "--select", "GL101", *args])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\n", encoding="utf-8")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "net.py").write_text(BAD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_write_then_check_hides_known_findings(project: Path) -> None:
    written = run("--write-baseline", "gradlint-baseline.json", "src")
    assert written.exit_code == 0, written.output
    assert "Recorded 1 finding in gradlint-baseline.json" in written.stderr
    document = json.loads((project / "gradlint-baseline.json").read_text(encoding="utf-8"))
    (entry,) = document["findings"]
    assert entry["path"] == "src/net.py" and entry["code"] == "GL101" and entry["count"] == 1
    assert "line" not in entry
    checked = run("--baseline", "gradlint-baseline.json", "src")
    assert checked.exit_code == 0, checked.output
    assert "1 known finding hidden by the baseline" in checked.output


def test_a_finding_survives_lines_moving(project: Path) -> None:
    run("--write-baseline", "base.json", "src")
    net = project / "src" / "net.py"
    net.write_text("import os\n\n\n# a comment\n" + BAD, encoding="utf-8")
    assert run("--baseline", "base.json", "src").exit_code == 0


def test_new_findings_still_fail(project: Path) -> None:
    run("--write-baseline", "base.json", "src")
    (project / "src" / "head.py").write_text(OTHER_BAD, encoding="utf-8")
    result = run("--baseline", "base.json", "src")
    assert result.exit_code == 1
    assert "src/head.py:3:8: GL101" in result.output
    assert "src/net.py" not in result.output


def test_a_copy_of_a_known_finding_is_new(project: Path) -> None:
    run("--write-baseline", "base.json", "src")
    (project / "src" / "net.py").write_text(BAD + "\n" + BAD.split("\n", 2)[2], encoding="utf-8")
    result = run("--baseline", "base.json", "src")
    assert result.exit_code == 1
    assert result.output.count("GL101") == 1


def test_editing_the_flagged_code_makes_it_new(project: Path) -> None:
    run("--write-baseline", "base.json", "src")
    net = project / "src" / "net.py"
    net.write_text(BAD.replace("model = ", "backbone = "), encoding="utf-8")
    assert run("--baseline", "base.json", "src").exit_code == 1


def test_paths_are_relative_to_the_project_root(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("--write-baseline", "base.json", "src")
    monkeypatch.chdir(project / "src")
    result = run("--baseline", "../base.json", "net.py")
    assert result.exit_code == 0, result.output


def test_fixed_findings_are_reported_as_stale(project: Path) -> None:
    run("--write-baseline", "base.json", "src")
    (project / "src" / "net.py").write_text(BAD.replace("Sigmoid", "ReLU"), encoding="utf-8")
    result = run("--baseline", "base.json", "src")
    assert result.exit_code == 0
    assert "1 baseline entry no longer match" in result.output


def test_missing_or_damaged_baseline_is_a_one_line_error(project: Path) -> None:
    result = run("--baseline", "nope.json", "src")
    assert result.exit_code == 2
    hint = "baseline not found; create it with `gradlint --write-baseline nope.json`"
    assert hint in result.stderr
    (project / "bad.json").write_text("[]", encoding="utf-8")
    result = run("--baseline", "bad.json", "src")
    assert result.exit_code == 2 and "not a gradlint baseline" in result.stderr


def test_baseline_is_written_atomically(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = project / "base.json"
    target.write_text("previous", encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    result = run("--write-baseline", "base.json", "src")
    assert result.exit_code == 2 and "cannot write baseline" in result.stderr
    assert target.read_text(encoding="utf-8") == "previous"
    assert sorted(p.name for p in project.iterdir()) == ["base.json", "pyproject.toml", "src"]


def test_baseline_works_for_notebook_cells(project: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "notebooks" / "char_rnn.ipynb"
    (project / "src" / "train.ipynb").write_bytes(example.read_bytes())
    args = ["--no-cache", "--select", "GL104,GL105"]
    CliRunner().invoke(cli, [*args, "--write-baseline", "base.json", "src"])
    result = CliRunner().invoke(cli, [*args, "--baseline", "base.json", "src"])
    assert result.exit_code == 0, result.output
    assert "2 known findings hidden" in result.output


# -- summary, colour and progress on a terminal ------------------------------------------


def test_terminal_summary_has_counts_per_rule_and_time(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gradlint.cli, "_is_terminal", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    (project / "src" / "head.py").write_text(OTHER_BAD, encoding="utf-8")
    output = run("src").output
    assert output.splitlines()[-1].startswith("Found 2 findings in 2 files (2 checked in ")
    assert output.rstrip().endswith("s): GL101 x2.")
    assert "\x1b[" not in output


def test_color_only_when_asked_or_on_a_terminal(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "\x1b[" not in run("src").output  # not a terminal
    colored = run("--color", "always", "src").output
    assert "\x1b[1msrc/net.py\x1b[0m:3:9: \x1b[1;33mGL101\x1b[0m " in colored
    monkeypatch.setattr(gradlint.cli, "_is_terminal", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert "\x1b[1;33mGL101" in run("src").output
    assert "\x1b[" not in run("--color", "never", "src").output
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in run("src").output
    assert "\x1b[" not in run("--format", "json", "--color", "always", "src").output


def test_no_color_rules() -> None:
    os.environ.pop("NO_COLOR", None)
    assert use_color("always", terminal=False)
    assert not use_color("never", terminal=True)
    assert not use_color("auto", terminal=False)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_and_erases_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradlint.output.progress as progress

    monkeypatch.setattr(progress, "DELAY", 0.0)
    stream = _Tty()
    with Progress(120, stream=stream):
        import time

        time.sleep(0.3)
    text = stream.getvalue()
    assert "gradlint: linting 120 files..." in text
    assert text.endswith("\r\x1b[2K")


def test_progress_is_silent_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradlint.output.progress as progress

    monkeypatch.setattr(progress, "DELAY", 0.0)
    stream = io.StringIO()
    with Progress(120, stream=stream):
        pass
    assert stream.getvalue() == ""


# -- gitlab code quality fingerprints (the baseline's fingerprint underneath) ------------


def _gitlab(project: Path) -> list[dict[str, object]]:
    result = run("--format", "gitlab", "src")
    issues: list[dict[str, object]] = json.loads(result.output)
    return issues


def test_gitlab_fingerprints_are_unique_and_survive_moving_lines(project: Path) -> None:
    net = project / "src" / "net.py"
    net.write_text(BAD + "\n" + BAD.split("\n", 2)[2], encoding="utf-8")  # the same finding twice
    first = _gitlab(project)
    assert len(first) == 2 and len({i["fingerprint"] for i in first}) == 2
    assert first[0]["severity"] == "minor"
    assert first[0]["check_name"] == "GL101 deep-saturating-stack"
    assert first[0]["location"] == {"path": "src/net.py", "lines": {"begin": 3, "end": 8}}
    net.write_text("# moved\n" + net.read_text(encoding="utf-8"), encoding="utf-8")
    moved = _gitlab(project)
    assert [i["fingerprint"] for i in moved] == [i["fingerprint"] for i in first]
    assert moved[0]["location"]["lines"]["begin"] == 4
