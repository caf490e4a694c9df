"""The bundled examples, linted end to end: examples/bad triggers every default rule (compared
with tests/snapshots/examples_bad.txt), examples/good is clean."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.registry import all_rules

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "snapshots" / "examples_bad.txt"


@pytest.fixture
def examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/ as the working folder, away from any configuration."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "examples"


def test_bad_examples_trigger_every_default_rule(examples: Path) -> None:
    result = CliRunner().invoke(cli, ["--no-cache", "-q", "--preview", "examples/bad"])
    assert result.exit_code == 1, result.output
    if os.environ.get("GRADLINT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(result.stdout, encoding="utf-8", newline="\n")
    assert result.stdout == SNAPSHOT.read_text(encoding="utf-8"), "examples_bad.txt differs"
    reported = {line.split(": ", 1)[1].split()[0] for line in result.stdout.splitlines()}
    expected = {rule.CODE for rule in all_rules() if rule.DEFAULT_ENABLED and not rule.PREVIEW}
    assert sorted(expected - reported) == [], "rules without an example in examples/bad"
    for example in sorted((examples / "bad").glob("*.py")):
        assert f"examples/bad/{example.name}:" in result.stdout, f"{example.name} finds nothing"


def test_good_examples_are_clean(examples: Path) -> None:
    result = CliRunner().invoke(cli, ["--no-cache", "examples/good"])
    assert result.exit_code == 0, result.output
