"""A damaged cache entry, of any kind, is ignored and rebuilt: never a crash, never a wrong
finding. Entries are JSON written by gradlint; disks, tools and people can damage them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gradlint.config import Config
from gradlint.registry import all_rules
from gradlint.runner import RunOptions, lint_tree

from .conftest import BAD

MODEL = BAD + "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"

Damage = Callable[[dict[str, Any]], object]


def _finding(entry: dict[str, Any]) -> dict[str, Any]:
    finding: dict[str, Any] = entry["findings"][0]
    return finding


DAMAGE: dict[str, Damage] = {
    "not_an_object": lambda entry: [entry],
    "null": lambda entry: None,
    "missing_findings": lambda entry: {k: v for k, v in entry.items() if k != "findings"},
    "unknown_field": lambda entry: {**entry, "colour": "red"},
    "findings_not_a_list": lambda entry: {**entry, "findings": {"0": _finding(entry)}},
    "line_is_text": lambda entry: {**entry, "findings": [{**_finding(entry), "line": "3"}]},
    "line_is_true": lambda entry: {**entry, "findings": [{**_finding(entry), "line": True}]},
    "column_is_float": lambda entry: {**entry, "findings": [{**_finding(entry), "column": 1.5}]},
    "unknown_severity": lambda entry: {
        **entry,
        "findings": [{**_finding(entry), "severity": "fatal"}],
    },
    "message_is_number": lambda entry: {**entry, "findings": [{**_finding(entry), "message": 7}]},
    "fix_is_text": lambda entry: {**entry, "findings": [{**_finding(entry), "fix": "delete it"}]},
    "source_lines_not_text": lambda entry: {**entry, "source_lines": [1, 2, 3]},
    "summary_is_list": lambda entry: {**entry, "summary": []},
    "noqa_line_not_a_number": lambda entry: {
        **entry,
        "summary": {**entry["summary"], "noqa": {"x": ["GL101"]}},
    },
    "class_line_is_text": lambda entry: {
        **entry,
        "summary": {**entry["summary"], "classes": {"Net": {"name": "Net", "line": "four"}}},
    },
    "deferred_not_objects": lambda entry: {
        **entry,
        "summary": {**entry["summary"], "deferred": [3]},
    },
    "imports_not_text": lambda entry: {
        **entry,
        "summary": {**entry["summary"], "imports": {"nn": 1}},
    },
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_entry_is_rebuilt(tmp_path: Path, case: str) -> None:
    (tmp_path / "model.py").write_text(MODEL)
    paths = [tmp_path / "model.py"]
    options = RunOptions(jobs=1, cache_dir=tmp_path / "cache")
    config, rules = Config(root=tmp_path), list(all_rules())
    fresh = lint_tree(paths, config, rules, options)
    assert [f.code for f in fresh[0].findings] == ["GL101"]
    (entry,) = (tmp_path / "cache").rglob("*.json")
    good = json.loads(entry.read_text())
    entry.write_text(json.dumps(DAMAGE[case](good)))
    again = lint_tree(paths, config, rules, options)
    assert again == fresh and again[0].summary == fresh[0].summary
    assert json.loads(entry.read_text()) == good  # and the entry was written anew


@pytest.mark.parametrize("junk", [b"", b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000])
def test_an_entry_that_is_not_json_is_rebuilt(tmp_path: Path, junk: bytes) -> None:
    (tmp_path / "model.py").write_text(MODEL)
    options = RunOptions(jobs=1, cache_dir=tmp_path / "cache")
    config, rules = Config(root=tmp_path), list(all_rules())
    fresh = lint_tree([tmp_path / "model.py"], config, rules, options)
    (entry,) = (tmp_path / "cache").rglob("*.json")
    entry.write_bytes(junk)
    assert lint_tree([tmp_path / "model.py"], config, rules, options) == fresh
