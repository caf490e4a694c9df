"""`# noqa: GL101` lives beside ruff: with `external = ["GL"]` ruff leaves it alone (RUF102, the
invalid-rule-code check, in current ruff; RUF100 in ruff before 0.12)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _ruff() -> list[str]:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (it is a dev dependency)")
    return [found]


def _noqa_rules(ruff: list[str]) -> str:
    """RUF100 reported unknown noqa codes until ruff moved that to RUF102 (invalid-rule-code)."""
    known = subprocess.run([*ruff, "rule", "RUF102"], capture_output=True, timeout=60, check=False)
    return "RUF100,RUF102" if known.returncode == 0 else "RUF100"


def _ruff_check(folder: Path, lint_table: str) -> subprocess.CompletedProcess[str]:
    ruff = _ruff()
    (folder / "pyproject.toml").write_text(lint_table, encoding="utf-8")
    (folder / "snippet.py").write_text("x = 1  # noqa: GL101\n", encoding="utf-8")
    return subprocess.run(
        [*ruff, "check", "--select", _noqa_rules(ruff), "--no-cache", "--output-format", "concise",
         "snippet.py"],
        cwd=folder, capture_output=True, text=True, timeout=60, check=False,
    )


def test_external_gl_codes_keep_ruff_quiet(tmp_path: Path) -> None:
    completed = _ruff_check(tmp_path, '[tool.ruff.lint]\nexternal = ["GL"]\n')
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "RUF10" not in completed.stdout


def test_without_external_ruff_flags_the_noqa(tmp_path: Path) -> None:
    completed = _ruff_check(tmp_path, "[tool.ruff.lint]\n")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "snippet.py:1:8: RUF10" in completed.stdout and "GL101" in completed.stdout
    if _noqa_rules(_ruff()) != "RUF100":  # a ruff that has the invalid-rule-code check
        assert "snippet.py:1:8: RUF102 " in completed.stdout


def test_the_readme_names_the_code_ruff_reports(tmp_path: Path) -> None:
    completed = _ruff_check(tmp_path, "[tool.ruff.lint]\n")
    reported = completed.stdout.split("snippet.py:1:8: ", 1)[1].split()[0]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    advice = readme[readme.index("If you also run [ruff]") :].split("```", 1)[0]
    assert f"({reported}" in advice, (reported, advice)


def test_this_repository_declares_gl_as_external() -> None:
    from gradlint.config import tomllib  # tomli before Python 3.11

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    settings = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    assert "GL" in settings["tool"]["ruff"]["lint"]["external"]
