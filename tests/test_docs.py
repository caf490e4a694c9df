"""Generated documentation: rule pages and the README rule table must match the rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gradlint.cli import explain_text
from gradlint.docs import END, START, DocsError, readme_with_table, stale_files, write
from gradlint.registry import all_rules

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "run `python -m gradlint.docs` and commit the result"


def test_rule_pages_and_readme_table_are_current() -> None:
    stale = [path.relative_to(ROOT).as_posix() for path in stale_files(ROOT)]
    assert not stale, f"stale generated docs {stale}: {REGENERATE}"


def test_every_rule_has_a_page_like_explain() -> None:
    for rule in all_rules():
        page = (ROOT / "docs" / "rules" / f"{rule.CODE}.md").read_text(encoding="utf-8")
        assert page.endswith(explain_text(rule)), f"{rule.CODE}: {REGENERATE}"


def test_readme_table_lists_every_rule_once() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index(START) : readme.index(END)]
    for rule in all_rules():
        assert table.count(f"[{rule.CODE}](docs/rules/{rule.CODE}.md)") == 1, rule.CODE


def test_generator_notices_and_fixes_a_stale_tree(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# project\n\n{START}\nold table\n{END}\n\nmore text\n", "utf-8")
    write(tmp_path)  # a current tree, whatever the rules are today
    fresh = readme.read_text(encoding="utf-8")
    assert fresh.startswith("# project\n") and fresh.endswith(f"{END}\n\nmore text\n")
    assert stale_files(tmp_path) == []
    first = sorted(all_rules(), key=lambda r: r.CODE)[0]
    (tmp_path / "docs" / "rules" / f"{first.CODE}.md").write_text("old\n", encoding="utf-8")
    (tmp_path / "docs" / "rules" / "GL199.md").write_text("a removed rule\n", encoding="utf-8")
    readme.write_text(readme_with_table(fresh, "| x |\n"), encoding="utf-8")
    assert {p.name for p in stale_files(tmp_path)} == {f"{first.CODE}.md", "GL199.md", "README.md"}
    changed = write(tmp_path)
    assert {p.name for p in changed} == {f"{first.CODE}.md", "GL199.md", "README.md"}
    assert not (tmp_path / "docs" / "rules" / "GL199.md").exists()
    assert stale_files(tmp_path) == []
    assert readme.read_text(encoding="utf-8") == fresh


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(DocsError, match="rules-table:start"):
        readme_with_table("# no table here\n", "| x |\n")


def test_command_writes_then_checks(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(f"# x\n\n{START}\n{END}\n", encoding="utf-8")
    base = [sys.executable, "-m", "gradlint.docs", "--root", str(tmp_path)]
    stale = subprocess.run([*base, "--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "python -m gradlint.docs" in stale.stderr
    assert not (tmp_path / "docs").exists()  # --check writes nothing
    assert subprocess.run(base, capture_output=True).returncode == 0
    assert subprocess.run([*base, "--check"], capture_output=True).returncode == 0
    assert "| [GL101](docs/rules/GL101.md) |" in (tmp_path / "README.md").read_text("utf-8")
