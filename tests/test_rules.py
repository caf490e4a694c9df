"""Runs every embedded case of every rule and checks each rule's declarations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gradlint import Invalid, Rule, Valid
from gradlint.fixes import apply_fixes
from gradlint.registry import all_rules
from gradlint.testing import run_rule

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


def _cases() -> list[tuple[type[Rule], Valid | Invalid]]:
    return [(rule, case) for rule in all_rules() for case in (*rule.VALID, *rule.INVALID)]


def _case_id(item: tuple[type[Rule], Valid | Invalid]) -> str:
    rule, case = item
    group = rule.VALID if isinstance(case, Valid) else rule.INVALID
    kind = "valid" if isinstance(case, Valid) else "invalid"
    return f"{rule.CODE}-{kind}-{group.index(case)}"


CASES = _cases()


@pytest.mark.parametrize("item", CASES, ids=[_case_id(c) for c in CASES])
def test_case(item: tuple[type[Rule], Valid | Invalid]) -> None:
    rule, case = item
    findings = run_rule(rule, case.source)
    assert not [f for f in findings if f.code == "GL000"], findings
    if isinstance(case, Valid):
        assert findings == [], f"{rule.CODE} should stay quiet:\n{case.source}\n{findings}"
        return
    assert findings, f"{rule.CODE} should report:\n{case.source}"
    if case.line is not None:
        assert [f.line for f in findings] == [case.line], findings
    if case.message is not None:
        assert any(case.message in f.message for f in findings), findings
    if case.fixed_source is not None:
        fixed, applied = apply_fixes(case.source, [f.fix for f in findings if f.fix])
        assert applied, f"{rule.CODE} offers no fix for:\n{case.source}"
        assert fixed == case.fixed_source
        assert not run_rule(rule, fixed), "the fixed source still triggers the rule"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.CODE)
def test_declarations(rule: type[Rule]) -> None:
    assert re.fullmatch(r"GL1\d\d", rule.CODE)
    file = RULES_DIR / f"{re.sub(r'(?<!^)(?=[A-Z])', '_', rule.__name__).lower()}.py"
    assert file.is_file(), f"{rule.__name__} should live in {file.name}"
    assert not rule.__name__.startswith(("No", "Avoid", "Disallow"))
    doc = rule.__doc__ or ""
    assert "## What it does" in doc and "## Why is this bad?" in doc
    assert rule.VALID and rule.INVALID
    assert len(rule.VALID) + len(rule.INVALID) >= 10, "aim for ten or more cases per rule"
    assert "{" not in rule.MESSAGE.format(**{k: "x" for k in re.findall(r"{(\w+)", rule.MESSAGE)})


def test_codes_and_names_are_unique() -> None:
    rules = all_rules()
    assert len({r.CODE for r in rules}) == len(rules)
    assert len({r.name() for r in rules}) == len(rules)


@pytest.mark.parametrize("rule", [r for r in all_rules() if r.NEEDS], ids=lambda r: r.CODE)
def test_needed_words_appear_in_every_case_the_rule_reports(rule: type[Rule]) -> None:
    """The engine skips a rule on files holding none of its NEEDS words; a reported case
    without one would mean the words are not really needed."""
    assert all(isinstance(word, str) and word for word in rule.NEEDS)
    for case in rule.INVALID:
        assert any(word in case.source for word in rule.NEEDS), case.source
