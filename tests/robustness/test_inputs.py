"""Hostile input: every case ends in a finding or a skip with a reason, exit 0/1/2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import libcst as cst
import pytest

from gradlint import Rule, Severity
from gradlint.config import Config
from gradlint.registry import all_rules
from gradlint.runner import RunOptions, lint_tree

from .conftest import BAD

TORCH = b"import torch\n"


def _codes(result_output: str) -> list[str]:
    return [line.split(": ", 1)[1].split()[0] for line in result_output.splitlines() if ": GL" in line]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("syntax.py", TORCH + b"def f(:\n", ["GL001"]),
        ("py2.py", TORCH + b'print "hello"\n', ["GL001"]),
        ("tabs.py", TORCH + b"if True:\n\tx = 1\n", []),
        ("mixed_tabs.py", TORCH + b"if True:\n\tx = 1\n        y = 2\n", ["GL001"]),
        ("crlf.py", BAD.replace("\n", "\r\n").encode(), ["GL101"]),
        ("bom.py", b"\xef\xbb\xbf" + BAD.encode(), ["GL101"]),
        ("latin1.py", b"# -*- coding: latin-1 -*-\n" + TORCH + b"s = '\xe9'\n", []),
        ("bad_utf8.py", TORCH + b"s = '\xff\xfe'\n", ["GL001"]),
        ("unknown_codec.py", b"# -*- coding: no-such-codec -*-\n" + TORCH, ["GL001"]),
        ("nul.py", TORCH + b"x = 1\x00\n", ["GL001"]),
        ("empty.py", b"", []),
        ("binary.py", bytes(range(256)) * 8 + b"torch", ["GL001"]),
        ("long_line.py", TORCH + b"x = [" + b"1, " * 50000 + b"]\n", []),
        ("deep_parens.py", TORCH + b"x = " + b"(" * 5000 + b"1" + b")" * 5000 + b"\n", ["GL001"]),
        ("deep_unary.py", TORCH + b"x = " + b"-" * 20000 + b"1\n", ["GL001"]),
        ("deep_chain.py", TORCH + b"x = a" + b".b" * 50000 + b"\n", ["GL001"]),
        ("deep_binop.py", TORCH + b"x = (" + b" +\n".join([b"1"] * 50000) + b")\n", ["GL001"]),
        ("deep_lambda.py", TORCH + b"f = " + b"lambda: " * 3000 + b"1\n", ["GL001"]),
        ("deep_indent.py", TORCH + b"".join(b"    " * i + b"if x:\n" for i in range(120)) + b"    " * 120 + b"pass\n", ["GL001"]),
    ],
)
def test_hostile_file(lint, tmp_path: Path, name: str, data: bytes, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / name).write_bytes(data)
    result = lint(name)
    assert result.exit_code == (1 if expected else 0), result.output
    assert _codes(result.output) == expected
    assert "Traceback" not in result.output


def test_generated_20_mb_file_is_skipped_with_a_reason(lint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    line = b"WEIGHTS_%d = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])\n"
    with (tmp_path / "generated.py").open("wb") as handle:
        handle.write(TORCH)
        for i in range(270_000):
            handle.write(line % i)
    assert (tmp_path / "generated.py").stat().st_size > 20_000_000
    result = lint("generated.py")
    assert result.exit_code == 1
    assert "GL001" in result.output and "MiB limit" in result.output


def test_a_folder_named_like_a_python_file_is_walked(lint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "x.py").mkdir()
    (tmp_path / "x.py" / "model.py").write_text(BAD)
    result = lint(".")
    assert result.exit_code == 1
    assert _codes(result.output) == ["GL101"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
def test_symlink_loops_and_links_out_of_the_tree(lint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "far.py").write_text(BAD)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "model.py").write_text(BAD)
    (tree / "loop").symlink_to(tree, target_is_directory=True)
    (tree / "away").symlink_to(outside, target_is_directory=True)
    (tree / "dangling.py").symlink_to(tmp_path / "missing.py")
    (tree / "self.py").symlink_to(tree / "self.py")
    result = lint("tree")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if ": GL" in line]
    assert [line.split(":")[0] for line in lines if "GL101" in line] == ["tree/model.py"]
    assert all("GL101" in line or "GL001" in line for line in lines)


def test_a_file_that_vanishes_mid_run_is_reported(tmp_path: Path) -> None:
    keep = tmp_path / "keep.py"
    keep.write_text(BAD)
    gone = tmp_path / "gone.py"
    results = lint_tree([gone, keep], Config(root=tmp_path), list(all_rules()), RunOptions(jobs=1))
    codes = {Path(r.path).name: [f.code for f in r.findings] for r in results}
    assert codes == {"gone.py": ["GL001"], "keep.py": ["GL101"]}
    assert "cannot read file" in results[0].findings[0].message


def test_an_unreadable_file_is_reported_and_the_rest_linted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked.py"
    locked.write_text(BAD)
    other = tmp_path / "other.py"
    other.write_text(BAD)
    real = os.open

    def deny(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(path).endswith("locked.py"):  # chmod 000 does not stop root: deny it here
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    results = lint_tree([locked, other], Config(root=tmp_path), list(all_rules()), RunOptions(jobs=1))
    assert [f.code for f in results[0].findings] == ["GL001"]
    assert "Permission denied" in results[0].findings[0].message
    assert [f.code for f in results[1].findings] == ["GL101"]


def test_tens_of_thousands_of_files(lint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for i in range(200):
        folder = tmp_path / "big" / f"pkg{i}"
        folder.mkdir(parents=True)
        for j in range(100):
            (folder / f"m{j}.py").write_text("VALUE = 1\n")
    (tmp_path / "big" / "pkg0" / "model.py").write_text(BAD)
    result = lint("--statistics", "big")
    assert result.exit_code == 1
    assert result.output.splitlines()[0].split() == ["1", "GL101", "deep-saturating-stack"]
    assert "20001 checked" in result.output


def test_static_linting_never_imports_user_code(lint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evil.py").write_text(
        f"import torch\nopen({str(marker)!r}, 'w').write('ran')\n"
        "raise SystemExit('user code ran')\n" + BAD
    )
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint]\nselect = ["GL1"]\n')
    before = set(sys.modules)
    result = lint(".")
    assert result.exit_code == 1
    assert not marker.exists()
    assert "evil" not in set(sys.modules) - before


def test_a_file_that_takes_too_long_is_reported_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import gradlint.engine
    import gradlint.runner

    slow = tmp_path / "slow.py"
    slow.write_text(BAD)
    fast = tmp_path / "fast.py"
    fast.write_text(BAD)
    real = gradlint.engine.lint_source

    def crawl(data, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if path.endswith("slow.py"):
            time.sleep(5)
        return real(data, path, *args, **kwargs)

    monkeypatch.setattr(gradlint.engine, "lint_source", crawl)
    monkeypatch.setattr(gradlint.runner, "FILE_TIME_LIMIT", 1)
    start = time.perf_counter()
    results = lint_tree([fast, slow], Config(root=tmp_path), list(all_rules()), RunOptions(jobs=1))
    assert time.perf_counter() - start < 4
    assert [f.code for f in results[0].findings] == ["GL101"]
    assert [f.code for f in results[1].findings] == ["GL001"]
    assert "longer than 1 s" in results[1].findings[0].message


def test_a_fifo_in_a_walked_folder_is_skipped_with_a_note(tmp_path: Path) -> None:
    """Reading a FIFO waits for a writer forever; the run must go on (a subprocess, so that a
    regression fails this test instead of hanging the suite)."""
    (tmp_path / "pkg").mkdir()
    os.mkfifo(tmp_path / "pkg" / "pipe.py")
    (tmp_path / "model.py").write_text(BAD)
    result = _gradlint(tmp_path, ".")
    assert result.returncode == 1, result.stderr
    assert _codes(result.stdout) == ["GL101"]
    note = "./pkg/pipe.py: not a regular file (a FIFO, socket or device); skipped"
    assert result.stderr.strip() == f"gradlint: warning: {note}"


def test_a_fifo_named_explicitly_is_gl001(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    (tmp_path / "model.py").write_text(BAD)
    result = _gradlint(tmp_path, "pipe.py", "model.py")
    assert result.returncode == 1, result.stderr
    assert "pipe.py:1:1: GL001 cannot read file: not a regular file" in result.stdout
    assert "no such file" not in result.stdout + result.stderr
    assert _codes(result.stdout) == ["GL101", "GL001"]


def _gradlint(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gradlint", "--no-cache", "-j", "1", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)


def test_an_unreadable_folder_is_a_warning_and_the_rest_is_linted(
    lint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "hidden.py").write_text(BAD)
    (tmp_path / "model.py").write_text(BAD)
    real = os.scandir

    def deny(path):  # type: ignore[no-untyped-def]
        if os.fspath(path).endswith("locked"):  # root reads any folder: deny it here
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", deny)
    result = lint(".")
    assert result.exit_code == 1
    assert _codes(result.stdout) == ["GL101"]
    note = "./locked: cannot read folder (Permission denied); skipped"
    assert result.stderr.strip() == f"gradlint: warning: {note}"


class Slow(Rule):
    """
    ## What it does
    Takes far too long on files that mention `SLOW`, like a rule meeting a pathological file.

    ## Why is this bad?
    It is a test double.
    """

    CODE = "GL195"
    SEVERITY = Severity.INFO
    MESSAGE = "never reported"

    def visit_Module(self, node: cst.Module) -> None:
        if "SLOW" in node.code:
            for _ in range(30):  # interruptible: the time limit must cut this short
                time.sleep(0.1)


def test_a_rule_that_runs_out_of_time_is_one_gl001_for_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradlint.runner

    slow = tmp_path / "a_slow.py"
    slow.write_text(BAD + "# SLOW\n")
    fast = tmp_path / "b_fast.py"
    fast.write_text(BAD)
    monkeypatch.setattr(gradlint.runner, "FILE_TIME_LIMIT", 1)
    rules = [Slow, *all_rules()]
    results = lint_tree([slow, fast], Config(root=tmp_path), rules, RunOptions(jobs=1))
    (timed_out,) = results[0].findings  # no GL000, nothing from the other rules
    assert timed_out.code == "GL001"
    assert timed_out.message == "linting took longer than 1 s; the file was skipped"
    assert [f.code for f in results[1].findings] == ["GL101"]
