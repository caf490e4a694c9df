"""`# noqa`, `# gradlint: skip-file` and per-file-ignores."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.config import Config
from gradlint.engine import lint_source
from gradlint.registry import find_rule
from gradlint.suppression import ALL, has_skip_file, noqa_lines, path_matches

BAD_MODEL = """\
from torch import nn

model = nn.Sequential({comment}
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
){last}
"""


def gl101_lines(comment: str = "", last: str = "", path: str = "net.py",
                config: Config | None = None) -> list[int]:
    rule = find_rule("GL101")
    assert rule is not None
    source = BAD_MODEL.format(comment=comment, last=last)
    result = lint_source(source, path, config or Config(), [rule])
    return [f.line for f in result.findings if f.code == "GL101"]


def test_unsuppressed_finding_is_on_line_3() -> None:
    assert gl101_lines() == [3]


@pytest.mark.parametrize(
    "comment",
    ["  # noqa: GL101", "  # noqa", "  # noqa:GL101", "  # NOQA: gl101", "  # noqa: E501, GL101",
     "  # noqa: E501,GL101", "  # some words  # noqa: GL101", "  # noqa: GL1"],
)
def test_noqa_on_the_reported_line_suppresses(comment: str) -> None:
    assert gl101_lines(comment) == []


@pytest.mark.parametrize("comment", ["  # noqa: GL102", "  # noqa: E501", "  # no qa", "  # GL101"])
def test_noqa_for_other_codes_does_not_suppress(comment: str) -> None:
    assert gl101_lines(comment) == [3]


def test_noqa_on_another_line_does_not_suppress() -> None:
    assert gl101_lines(last="  # noqa: GL101") == [3]


def test_noqa_inside_a_string_does_not_suppress() -> None:
    source = BAD_MODEL.format(comment="", last="").replace(
        "model = nn.Sequential(", "model = nn.Sequential('# noqa',"
    )
    rule = find_rule("GL101")
    assert rule is not None
    assert [f.line for f in lint_source(source, "net.py", Config(), [rule]).findings] == [3]


def test_noqa_lines_parses_codes() -> None:
    source = "a = 1  # noqa\nb = 2  # noqa: GL101, GL102\nc = '# noqa'\n"
    assert noqa_lines(source) == {1: ALL, 2: frozenset({"GL101", "GL102"})}


def test_noqa_lines_survives_untokenizable_source() -> None:
    assert noqa_lines("x = (  # noqa: GL101\n") == {1: frozenset({"GL101"})}


@pytest.mark.parametrize(
    ("source", "skipped"),
    [
        ("# gradlint: skip-file\nx = 1\n", True),
        ("x = 1\n#gradlint:skip-file\n", True),
        ("x = 1  # GRADLINT: SKIP-FILE\n", True),
        ("x = '# gradlint: skip-file'\n", False),
        ("# gradlint: skip-files-later\nx = 1\n", False),
        ("x = 1\n", False),
    ],
)
def test_has_skip_file(source: str, skipped: bool) -> None:
    assert has_skip_file(source) is skipped


def test_skip_file_skips_everything() -> None:
    source = "# gradlint: skip-file\n" + BAD_MODEL.format(comment="", last="") + "x = (\n"
    result = lint_source(source, "net.py", Config())
    assert result.findings == ()
    assert result.skipped == "gradlint: skip-file"


@pytest.mark.parametrize(
    ("relative", "pattern", "matches"),
    [
        ("tests/test_x.py", "tests/**", True),
        ("tests/unit/test_x.py", "tests/**", True),
        ("tests/unit/test_x.py", "tests/*", True),
        ("src/tests/test_x.py", "tests/**", False),
        ("src/test_x.py", "test_*.py", True),
        ("src/test_x.py", "./src/test_x.py", True),
        ("src/model.py", "test_*.py", False),
        ("legacy", "legacy/", True),
        ("legacy/a/b.py", "legacy/**", True),
        ("legacy/a/b.py", "legacy/a/*.py", True),
    ],
)
def test_path_matches(relative: str, pattern: str, matches: bool) -> None:
    assert path_matches(relative, pattern) is matches


@pytest.mark.parametrize("selector", ["GL101", "GL1", "deep-saturating-stack", "ALL"])
def test_per_file_ignores(tmp_path: Path, selector: str) -> None:
    config = Config(root=tmp_path, per_file_ignores=(("legacy/**", (selector,)),))
    assert gl101_lines(path=str(tmp_path / "legacy" / "net.py"), config=config) == []
    assert gl101_lines(path=str(tmp_path / "src" / "net.py"), config=config) == [3]


def test_per_file_ignores_for_another_code_keeps_the_finding(tmp_path: Path) -> None:
    config = Config(root=tmp_path, per_file_ignores=(("*.py", ("GL102",)),))
    assert gl101_lines(path=str(tmp_path / "net.py"), config=config) == [3]


def test_per_file_ignores_from_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradlint]\nper-file-ignores = { "legacy/**" = ["GL101"], "*_gen.py" = ["GL1"] }\n'
    )
    for name in ("legacy/old.py", "src/model.py", "src/model_gen.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(BAD_MODEL.format(comment="", last=""), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "src")  # patterns are relative to the config's folder
    result = CliRunner().invoke(cli, ["--select", "GL101", ".."])
    assert result.exit_code == 1
    flagged = [line.split(":")[0] for line in result.stdout.splitlines()[:-1]]
    assert flagged == ["../src/model.py"]


def test_noqa_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(BAD_MODEL.format(comment="  # noqa: GL101", last=""))
    (tmp_path / "b.py").write_text(BAD_MODEL.format(comment="  # noqa", last=""))
    skipped = "# gradlint: skip-file\n" + BAD_MODEL.format(comment="", last="")
    (tmp_path / "c.py").write_text(skipped)
    result = CliRunner().invoke(cli, ["--select", "GL101", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "All checks passed! (3 files checked)\n"
