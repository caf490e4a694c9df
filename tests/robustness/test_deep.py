"""Deep but legal code: whatever CPython compiles is linted, and its findings survive.

Each `elif` nests the rest of its chain one level deeper, and so does each term of a chain of
`+`, `or`, implicitly joined strings or attribute accesses; real files hold such chains
(generated dispatch tables, long sums of losses, SQL-like string blocks).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gradlint.config import Config
from gradlint.engine import lint_source
from gradlint.guard import refusal
from gradlint.registry import all_rules
from gradlint.runner import RunOptions, lint_tree

from .conftest import BAD

RULES = list(all_rules())


def _elif(n: int) -> str:
    branches = "".join(f"    elif x == {i}:\n        return {i}\n" for i in range(1, n))
    return (
        f"def pick(x):\n    if x == 0:\n        return 0\n{branches}    else:\n        return -1\n"
    )


def _terms(n: int, joiner: str) -> str:
    return "total = (\n    " + f" {joiner}\n    ".join(f"part{i}" for i in range(n)) + "\n)\n"


CHAINS = {
    "elif_1000": _elif(1000),
    "plus_500": _terms(500, "+"),
    "or_500": _terms(500, "or"),
    "strings_500": "text = (\n" + "".join(f"    'piece {i} '\n" for i in range(500)) + ")\n",
    "attribute_500": "leaf = root" + "".join(f".child{i}" for i in range(500)) + "\n",
    "ternary_300": "y = " + " ".join(f"{i} if x == {i} else" for i in range(300)) + " -1\n",
}


def _in_context(chain: str) -> str:
    """The chain at the top level and again inside a function and a method, with a real
    finding (GL101) beside it."""
    nested = "".join("        " + line + "\n" if line else "\n" for line in chain.splitlines())
    return BAD + chain + "\nclass Holder:\n    def method(self, x):\n" + nested


@pytest.mark.parametrize("case", sorted(CHAINS))
def test_a_deep_legal_file_keeps_its_findings(case: str) -> None:
    source = _in_context(CHAINS[case])
    compile(source, case, "exec", dont_inherit=True)  # CPython accepts it
    result = lint_source(source, f"{case}.py", Config(), RULES)
    assert [f.code for f in result.findings] == ["GL101"], [f.message for f in result.findings]


def test_a_deep_file_never_costs_another_file_its_results(tmp_path: Path) -> None:
    deep = tmp_path / "a_dispatch.py"
    deep.write_text(_in_context(_elif(1000)))
    other = tmp_path / "b_model.py"
    other.write_text(BAD)
    results = lint_tree([deep, other], Config(root=tmp_path), RULES, RunOptions(jobs=1))
    assert [[f.code for f in r.findings] for r in results] == [["GL101"], ["GL101"]]


def _cpython_compiles(source: str) -> bool:
    """Whether a fresh interpreter compiles `source` (pytest's own frames lower the limit)."""
    check = "import sys; compile(sys.stdin.read(), 'deep', 'exec')"
    return (
        subprocess.run(
            [sys.executable, "-c", check], input=source.encode(), capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.parametrize(
    ("case", "source"),
    [
        ("plus_2900", "y = " + " + ".join(f"a{i}" for i in range(2900)) + "\n"),
        ("elif_2900", _elif(2900)),
        ("or_6000", "y = " + " or ".join(f"a{i}" for i in range(6000)) + "\n"),
        ("calls_1400", "y = a" + "".join(f".b{i}()" for i in range(1400)) + "\n"),
    ],
)
def test_the_guard_passes_what_cpython_compiles(case: str, source: str) -> None:
    assert _cpython_compiles(source)
    assert refusal(source.encode()) is None


@pytest.mark.parametrize(
    "source",
    [
        _elif(10_000),  # libcst's parser crashes the process on this
        "y = " + " + ".join(f"a{i}" for i in range(5000)) + "\n",
        "y = " + "-" * 4000 + "x\n",
        "y = " + "--\\\r\n" * 2500 + "x\r\n",  # short lines, one statement (CRLF)
    ],
)
def test_the_guard_refuses_what_cpython_refuses(source: str) -> None:
    assert not _cpython_compiles(source)
    reason = refusal(source.encode())
    assert reason is not None and "deep" in reason


def test_a_failure_in_the_engine_is_gl000_for_that_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradlint.engine

    real = gradlint.engine.class_facts

    def broken(index, text):  # type: ignore[no-untyped-def]
        if "BROKEN" in text:
            raise ValueError("engine bug")
        return real(index, text)

    monkeypatch.setattr(gradlint.engine, "class_facts", broken)
    first = tmp_path / "a.py"
    first.write_text(BAD + "class Net(nn.Module):\n    pass\n# BROKEN\n")
    second = tmp_path / "b.py"
    second.write_text(BAD + "class Net(nn.Module):\n    pass\n")
    results = lint_tree([first, second], Config(root=tmp_path), RULES, RunOptions(jobs=1))
    assert [f.code for f in results[0].findings] == ["GL000"]
    assert "ValueError: engine bug" in results[0].findings[0].message
    assert [f.code for f in results[1].findings] == ["GL101"]


def test_a_file_too_deep_even_for_the_deep_stack_is_gl001(monkeypatch: pytest.MonkeyPatch) -> None:
    import gradlint.engine

    def no_deep_stack(work):  # type: ignore[no-untyped-def]
        raise RecursionError

    monkeypatch.setattr(gradlint.engine, "run_deep", no_deep_stack)
    result = lint_source(_in_context(_elif(1000)), "deep.py", Config(), RULES)
    assert [f.code for f in result.findings] == ["GL001"]
    assert "nested too deeply to analyse" in result.findings[0].message
