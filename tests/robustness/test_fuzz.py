"""Property-based and differential tests of the engine."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradlint.config import Config
from gradlint.engine import lint_source
from gradlint.registry import all_rules
from gradlint.runner import RunOptions, lint_tree

hypothesmith = pytest.importorskip("hypothesmith")

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted((ROOT / "examples").rglob("*.py")) + sorted((ROOT / "tests" / "fixtures").rglob("*.py"))
RULES = list(all_rules())
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def _assert_clean(source: str | bytes) -> None:
    result = lint_source(source, "fuzz.py", Config(), RULES)
    internal = [f for f in result.findings if f.code == "GL000"]
    assert not internal, internal[0].message


@FUZZ
@given(hypothesmith.from_grammar())
def test_generated_python_never_breaks_a_rule(source: str) -> None:
    _assert_clean("import torch\nfrom torch import nn\n" + source)


@FUZZ
@given(hypothesmith.from_node())
def test_generated_syntax_trees_never_break_a_rule(source: str) -> None:
    _assert_clean("import torch\nimport torch.nn as nn\n" + source)


@st.composite
def mutated_model_files(draw: st.DrawFn) -> bytes:
    """A real PyTorch file from examples/ or the fixtures, then a few random edits."""
    data = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 6))):
        lines = data.split(b"\n")
        kind = rng.choice(["drop", "dup", "swap", "cut", "insert", "indent"])
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(j, lines[i])
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "indent":
            lines[i] = b"    " + lines[i]
        elif kind == "insert":
            token = rng.choice([b"(", b")", b"nn.Sigmoid()", b"lambda: ", b"*", b"torch.sigmoid(", b"\t", b"\xff", b"'''"])
            position = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:position] + token + lines[i][position:]
        data = bytearray(b"\n".join(lines))
        if kind == "cut" and data:
            start = rng.randrange(len(data))
            del data[start : start + rng.randrange(1, 40)]
    return bytes(data)


@FUZZ
@given(mutated_model_files())
def test_mutated_real_files_never_break_a_rule(data: bytes) -> None:
    _assert_clean(data)


def _tree(tmp_path: Path) -> list[Path]:
    for source in SEEDS:
        target = tmp_path / "tree" / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return sorted((tmp_path / "tree").rglob("*.py"))


def _flat(results: list) -> list:  # type: ignore[type-arg]
    return [(r.path, r.findings) for r in results]


def test_results_are_identical_with_and_without_cache_and_jobs(tmp_path: Path) -> None:
    paths = _tree(tmp_path)
    config = Config(root=tmp_path)
    plain = _flat(lint_tree(paths, config, RULES, RunOptions(jobs=1)))
    assert any(findings for _, findings in plain)
    cached = RunOptions(jobs=1, cache_dir=tmp_path / "cache")
    assert _flat(lint_tree(paths, config, RULES, cached)) == plain  # fills the cache
    assert _flat(lint_tree(paths, config, RULES, cached)) == plain  # reads it
    many = RunOptions(jobs=2, cache_dir=None)
    assert _flat(lint_tree(paths * 1, config, RULES, many)) == plain


def test_results_do_not_depend_on_path_order_or_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from gradlint.cli import cli

    paths = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    forward = CliRunner().invoke(cli, ["--no-cache", "-q", *[str(p.relative_to(tmp_path)) for p in paths]])
    backward = CliRunner().invoke(cli, ["--no-cache", "-q", *[str(p.relative_to(tmp_path)) for p in reversed(paths)]])
    assert forward.output == backward.output and forward.exit_code == backward.exit_code == 1
    walked = CliRunner().invoke(cli, ["--no-cache", "-q", "tree"])
    monkeypatch.chdir(tmp_path / "tree")
    inside = CliRunner().invoke(cli, ["--no-cache", "-q", "."])
    assert inside.exit_code == walked.exit_code == 1
    relative = [line.replace("tree/", "") for line in walked.output.splitlines()]
    assert inside.output.splitlines() == relative
