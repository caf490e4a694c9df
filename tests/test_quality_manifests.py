"""The labelled corpus's manifests stay loadable: a broken one would drop its labels from
`benchmarks/quality.py` (which lists it as an error) without anyone noticing in review."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

from gradlint.registry import all_rules

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MANIFESTS = sorted((BENCHMARKS / "quality" / "sources").glob("*.toml"))


def _quality():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("quality", BENCHMARKS / "quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


quality = _quality()


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_loads(manifest: Path) -> None:
    corpus = quality.Corpus()
    quality.load_manifest(manifest, corpus)
    assert not corpus.errors, corpus.errors
    assert corpus.trees, f"{manifest.name} pins no code"


def test_labels_name_rules_that_exist_and_no_label_repeats() -> None:
    corpus = quality.Corpus()
    for manifest in MANIFESTS:
        quality.load_manifest(manifest, corpus)
    codes = {rule.CODE for rule in all_rules()}
    assert {bug.rule for bug in corpus.bugs} <= codes
    assert {verdict.rule for verdict in corpus.verdicts} <= codes | {"GL000", "GL001"}
    repeated = [
        key
        for key, count in Counter(
            (b.tree, b.path, b.rule, b.lines, b.cell) for b in corpus.bugs
        ).items()
        if count > 1
    ]
    assert repeated == []
