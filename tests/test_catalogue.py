"""The rules catalogue: a run whose every file is cached imports neither the rules nor libcst,
and gives the same output as the run that filled the cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cache import code_stamp
from gradlint.cli import cli
from gradlint.config import Config
from gradlint.registry import (
    CATALOGUE_FILE,
    LazyRule,
    all_rules,
    catalogue_in,
    describe,
    known_rules,
    selected_rules,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CROSSFILE = Path(__file__).parent / "fixtures" / "crossfile"

# Runs the CLI in a fresh interpreter, then reports what the run had to import.
PROBE = """
import json, sys
from gradlint.cli import main
sys.argv = ["gradlint", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({
    "exit": code,
    "libcst": "libcst" in sys.modules,
    "rules": sorted(m for m in sys.modules if m.startswith("gradlint.rules.")),
}))
"""


def run_fresh(*args: str) -> tuple[dict[str, object], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    *report, last = done.stdout.splitlines()
    return json.loads(last), "\n".join(report)


def test_a_fully_cached_run_imports_neither_the_rules_nor_libcst(tmp_path: Path) -> None:
    tree = tmp_path / "examples"
    shutil.copytree(EXAMPLES, tree)
    cache = tmp_path / "cache"
    args = ("check", "--cache-dir", str(cache), "--jobs", "1", str(tree))
    cold, cold_output = run_fresh(*args)
    assert cold["libcst"] and cold["rules"], "the first run lints, so it needs both"
    assert (cache / CATALOGUE_FILE).is_file()
    warm, warm_output = run_fresh(*args)
    assert warm == {"exit": cold["exit"], "libcst": False, "rules": []}
    assert warm_output == cold_output
    assert cold["exit"] == 1 and "GL101" in cold_output


def test_one_changed_file_loads_the_rules_and_lints_only_that_file(tmp_path: Path) -> None:
    tree = tmp_path / "examples"
    shutil.copytree(EXAMPLES, tree)
    cache = tmp_path / "cache"
    args = ("check", "--cache-dir", str(cache), "--jobs", "1", "--format", "json", str(tree))
    _, before = run_fresh(*args)
    changed = next(p for p in sorted(tree.rglob("*.py")) if "Sigmoid" in p.read_text())
    changed.write_text(changed.read_text() + "\n# edited\n")
    after, output = run_fresh(*args)
    assert after["libcst"] and after["rules"]
    assert json.loads(output) == json.loads(before)


def test_the_project_phase_works_from_the_catalogue(tmp_path: Path) -> None:
    tree = tmp_path / "crossfile"
    shutil.copytree(CROSSFILE, tree)
    args = ["--select", "GL104", "--cache-dir", str(tmp_path / "cache"), "-q", str(tree)]
    first = CliRunner().invoke(cli, args)
    second = CliRunner().invoke(cli, args)
    assert first.exit_code == second.exit_code == 1
    assert "train_rnn.py:14:13: GL104" in first.output
    assert second.output == first.output


def test_catalogue_entries_stand_in_for_the_rules(tmp_path: Path) -> None:
    stamp = code_stamp()
    with catalogue_in(tmp_path, stamp):  # no catalogue yet: the classes, and one is written
        assert known_rules() == all_rules()
    with catalogue_in(tmp_path, stamp):
        entries = known_rules()
        assert all(isinstance(entry, LazyRule) for entry in entries)
        config = Config(select=("GL1",), ignore=("GL105",))
        chosen = selected_rules(config)
    classes = selected_rules(config)
    assert [e.CODE for e in chosen] == [c.CODE for c in classes]
    for entry, rule in zip(entries, all_rules()):
        assert (entry.CODE, entry.name(), entry.summary()) == (rule.CODE, rule.name(), rule.summary())
        assert (entry.SEVERITY, entry.OPTIONS, entry.HINT, entry.NEEDS, entry.__doc__) == (
            rule.SEVERITY, rule.OPTIONS, rule.HINT, rule.NEEDS, rule.__doc__
        )
        assert entry.load() is rule
        assert entry.resolve_deferred == rule.resolve_deferred  # anything else: from the class
    assert known_rules() == all_rules(), "outside the block the rules are the classes again"


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # cut short
        lambda text: json.dumps({**json.loads(text), "stamp": "an older gradlint"}),
        lambda text: json.dumps({**json.loads(text), "rules": [{"code": "GL101"}]}),
    ],
    ids=["truncated", "stale", "incomplete"],
)
def test_a_damaged_or_stale_catalogue_is_ignored_and_rewritten(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    stamp = code_stamp()
    with catalogue_in(tmp_path, stamp):
        pass
    file = tmp_path / CATALOGUE_FILE
    good = file.read_text(encoding="utf-8")
    file.write_text(damage(good), encoding="utf-8")
    with catalogue_in(tmp_path, stamp):
        assert known_rules() == all_rules()
    assert json.loads(file.read_text(encoding="utf-8")) == json.loads(good)
    assert json.loads(good)["rules"] == [describe(rule) for rule in all_rules()]
