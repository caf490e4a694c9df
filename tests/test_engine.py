"""The engine: decoding, GL001 for unreadable files, GL000 for crashing rules, one traversal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import libcst as cst
import pytest

from gradlint import Rule, Severity
from gradlint.config import Config
from gradlint.engine import lint_paths, lint_source
from gradlint.registry import all_rules, find_rule

BAD_MODEL = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""


def gl101() -> type[Rule]:
    rule = find_rule("GL101")
    assert rule is not None
    return rule


class BrokenOnCall(Rule):
    """
    ## What it does
    Raises on every call, to prove one broken rule cannot stop the others.

    ## Why is this bad?
    It is a test double.
    """

    CODE = "GL198"
    SEVERITY = Severity.ERROR
    MESSAGE = "never reported"
    calls: ClassVar[list[int]] = []

    def visit_Call(self, node: cst.Call) -> None:
        type(self).calls.append(1)
        raise ZeroDivisionError("broken on purpose")


class BrokenAtTheEnd(Rule):
    """
    ## What it does
    Reports a finding, then crashes in leave_Module; its finding must not leak out.

    ## Why is this bad?
    It is a test double.
    """

    CODE = "GL197"
    SEVERITY = Severity.WARNING
    MESSAGE = "half-done"

    def visit_Name(self, node: cst.Name) -> None:
        self.report(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        raise KeyError("late")


class NeedsSwish(Rule):
    """
    ## What it does
    Reports every module that it visits; runs only on files that mention `swish`.

    ## Why is this bad?
    It is a test double.
    """

    CODE = "GL196"
    NEEDS = ("swish", "SiLU")
    SEVERITY = Severity.INFO
    MESSAGE = "visited"

    def visit_Module(self, node: cst.Module) -> None:
        self.report(node)


def codes(source: str | bytes, rules: list[type[Rule]] | None = None,
          config: Config | None = None) -> list[tuple[str, int, int]]:
    result = lint_source(source, "net.py", config or Config(), rules)
    return [(f.code, f.line, f.column) for f in result.findings]


def test_str_and_bytes_give_the_same_findings() -> None:
    assert codes(BAD_MODEL, [gl101()]) == codes(BAD_MODEL.encode(), [gl101()]) == [("GL101", 3, 9)]


def test_a_crashing_rule_becomes_gl000_and_the_others_still_run() -> None:
    BrokenOnCall.calls.clear()
    result = lint_source(BAD_MODEL, "pkg/net.py", Config(), [BrokenOnCall, gl101()])
    by_code = {f.code: f for f in result.findings}
    assert set(by_code) == {"GL000", "GL101"}
    crash = by_code["GL000"]
    assert crash.path == "pkg/net.py"
    assert crash.severity is Severity.ERROR and crash.name == "internal-error"
    assert "GL198" in crash.message and "broken-on-call" in crash.message
    assert "ZeroDivisionError: broken on purpose" in crash.message
    assert "Traceback" not in crash.message
    assert BrokenOnCall.calls == [1], "a crashed rule is switched off for the rest of the file"


def test_a_rule_crashing_late_drops_its_findings() -> None:
    result = lint_source(BAD_MODEL, "net.py", Config(), [BrokenAtTheEnd, gl101()])
    assert sorted(f.code for f in result.findings) == ["GL000", "GL101"]
    assert "KeyError" in next(f.message for f in result.findings if f.code == "GL000")


@pytest.mark.parametrize(
    ("source", "runs"),
    [
        ("import torch\nx = torch.nn.SiLU()\n", True),
        ("from mylib import swish_v2\n", True),
        ("import torch\nx = torch.relu\n", False),
        ("import torch\n# SILU in other words\n", False),  # the words are case-sensitive
    ],
)
def test_a_rule_runs_only_on_files_holding_one_of_its_needed_words(source: str, runs: bool) -> None:
    assert bool(codes(source, [NeedsSwish])) is runs


def test_each_file_gets_a_fresh_rule(tmp_path: Path) -> None:
    BrokenOnCall.calls.clear()
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(BAD_MODEL, encoding="utf-8")
    paths = sorted(tmp_path.iterdir())
    results = list(lint_paths(paths, Config(root=tmp_path), [BrokenOnCall, gl101()]))
    assert [sorted(f.code for f in r.findings) for r in results] == [["GL000", "GL101"]] * 2
    assert BrokenOnCall.calls == [1, 1]


@pytest.mark.parametrize(
    ("source", "line", "column", "text"),
    [
        ("x = (\n", 1, 5, "'(' was never closed"),
        ("import torch\ndef f(:\n    pass\n", 2, 7, "invalid syntax"),
        ("def f():\nreturn 1\n", 2, 1, "expected an indented block"),
    ],
)
def test_syntax_error_is_gl001_with_its_position(
    source: str, line: int, column: int, text: str
) -> None:
    (finding,) = lint_source(source, "bad.py", Config()).findings
    assert (finding.code, finding.name, finding.line, finding.column) == (
        "GL001", "unreadable-file", line, column
    )
    assert finding.message.startswith("syntax error: ") and text in finding.message
    assert finding.severity is Severity.ERROR


def test_non_utf8_is_gl001_on_the_bad_line() -> None:
    (finding,) = lint_source(b"import torch\n\nx = '\xff'\n", "bad.py", Config()).findings
    assert (finding.code, finding.line) == ("GL001", 3)
    assert "not valid text" in finding.message and "utf-8" in finding.message


def test_unknown_declared_encoding_is_gl001() -> None:
    (finding,) = lint_source(b"# coding: klingon\nx = 1\n", "bad.py", Config()).findings
    assert finding.code == "GL001"
    assert "klingon" in finding.message


def test_nul_byte_is_gl001() -> None:
    (finding,) = lint_source(b"x = 1\x00\n", "bad.py", Config()).findings
    assert finding.code == "GL001"


def test_pep263_latin1_file_parses() -> None:
    source = ("# -*- coding: latin-1 -*-\n# café\n" + BAD_MODEL).encode("latin-1")
    assert codes(source, [gl101()]) == [("GL101", 5, 9)]


def test_bom_is_accepted_and_columns_are_unchanged() -> None:
    assert codes(b"\xef\xbb\xbf" + BAD_MODEL.encode(), [gl101()]) == [("GL101", 3, 9)]


@pytest.mark.parametrize("source", ["", b"", "\n", "# only a comment\n", b"\xef\xbb\xbf"])
def test_empty_files_are_clean(source: str | bytes) -> None:
    result = lint_source(source, "empty.py", Config())
    assert result.findings == () and result.skipped is None


def test_gl001_can_be_ignored() -> None:
    assert codes("x = (\n", config=Config(ignore=("GL001",))) == []
    assert codes("x = (\n", config=Config(ignore=("GL0",))) == []
    assert codes("x = (\n", config=Config(select=("GL1",))) == []
    assert codes("x = (\n", config=Config(select=("GL101",))) == []
    assert [c for c, _, _ in codes("x = (\n", config=Config(select=("GL001",)))] == ["GL001"]


def test_unreadable_path_is_gl001_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a.py").symlink_to(tmp_path / "nowhere.py")
    (tmp_path / "b.py").write_text(BAD_MODEL, encoding="utf-8")
    results = list(lint_paths(sorted(tmp_path.iterdir()), Config(root=tmp_path), [gl101()]))
    assert [r.path.rsplit("/", 1)[1] for r in results] == ["a.py", "b.py"]
    (gone,) = results[0].findings
    assert gone.code == "GL001" and gone.message.startswith("cannot read file")
    assert [f.code for f in results[1].findings] == ["GL101"]


def test_directory_with_py_suffix_is_gl001(tmp_path: Path) -> None:
    (tmp_path / "odd.py").mkdir()
    (result,) = lint_paths([tmp_path / "odd.py"], Config(root=tmp_path), [gl101()])
    assert [f.code for f in result.findings] == ["GL001"]


def test_findings_are_sorted_and_keep_source_lines() -> None:
    source = BAD_MODEL + "\nother = " + BAD_MODEL.split("model = ", 1)[1]
    result = lint_source(source, "net.py", Config(), [gl101()])
    assert [f.line for f in result.findings] == [3, 10]
    assert result.source_lines[2] == "model = nn.Sequential("


def test_lint_paths_does_not_touch_the_files(tmp_path: Path) -> None:
    path = tmp_path / "net.py"
    path.write_text(BAD_MODEL, encoding="utf-8")
    old = os.stat(path)
    list(lint_paths([path], Config(root=tmp_path)))
    new = os.stat(path)
    assert (new.st_mtime_ns, new.st_size) == (old.st_mtime_ns, old.st_size)
    assert path.read_text(encoding="utf-8") == BAD_MODEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.py"]


def test_every_registered_rule_survives_awkward_input() -> None:
    sources = ["", "x = 1\n", "import torch\nx = torch.nn.Sequential(*[])\n",
               "from torch import nn\nclass A(nn.Module):\n    pass\n",
               "from torch import nn\nnn.Sequential()\n" + "(" * 50 + "1" + ")" * 50 + "\n"]
    for source in sources:
        result = lint_source(source, "x.py", Config(), list(all_rules()))
        assert not [f for f in result.findings if f.code == "GL000"], (source, result.findings)
