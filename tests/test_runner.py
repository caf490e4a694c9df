"""The tree runner: prefilter, cache, parallel jobs, the project phase, and fixes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import libcst as cst
import pytest

import gradlint.engine
import gradlint.runner
from gradlint import Invalid, Rule, Severity, Valid
from gradlint.cache import Cache
from gradlint.config import Config
from gradlint.findings import Edit, Fix
from gradlint.fixes import FixError, apply_fixes, check_parses, write_atomically
from gradlint.project import ClassFacts, Deferred, FileSummary
from gradlint.registry import find_rule
from gradlint.runner import RunOptions, lint_tree, passes_prefilter

SIGMOIDS = "from torch import nn\nnet = nn.Sequential(" + "nn.Linear(4, 4), nn.Sigmoid(), " * 4 + ")\n"


def _tree(root: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return sorted(paths)


GL101 = find_rule("GL101")
assert GL101 is not None


def test_prefilter_skips_files_without_torch_but_keeps_local_importers(tmp_path: Path) -> None:
    paths = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/model.py": SIGMOIDS,
        "pkg/train.py": "from pkg.model import net\nprint(net)\n",
        "pkg/rel.py": "from .model import net\n",
        "notes.py": "import json\nprint(json.dumps({}))\n",
    })
    results = {Path(r.path).name: r for r in lint_tree(paths, Config(root=tmp_path), [GL101], RunOptions(jobs=1))}
    assert results["notes.py"].skipped == "no torch and no local import"
    assert results["train.py"].skipped is None and results["rel.py"].skipped is None
    assert [f.code for f in results["model.py"].findings] == ["GL101"]
    parsed = [p.name for p in passes_prefilter(paths)]  # what the benchmark's floor parses
    assert sorted(parsed) == sorted(
        name for name, r in results.items() if r.skipped is None
    )


def test_cache_hits_skip_linting_and_survive_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _tree(tmp_path / "src", {"a.py": SIGMOIDS, "b.py": SIGMOIDS.replace("4, 4", "8, 8")})
    options = RunOptions(jobs=1, cache_dir=tmp_path / "cache")
    first = lint_tree(paths, Config(root=tmp_path), [GL101], options)
    calls: list[str] = []
    real = gradlint.engine.lint_source
    monkeypatch.setattr(gradlint.engine, "lint_source", lambda data, path, *a, **k: calls.append(path) or real(data, path, *a, **k))
    second = lint_tree(paths, Config(root=tmp_path), [GL101], options)
    assert calls == [] and second == first
    assert (tmp_path / "cache" / ".gitignore").read_text().strip().endswith("*")
    # a damaged entry is ignored and rebuilt; a changed file is linted again
    for entry in (tmp_path / "cache").rglob("*.json"):
        entry.write_text("{not json")
    paths[0].write_text(SIGMOIDS + "# edited\n", encoding="utf-8")
    third = lint_tree(paths, Config(root=tmp_path), [GL101], options)
    assert sorted(Path(c).name for c in calls) == ["a.py", "b.py"]
    assert [len(r.findings) for r in third] == [1, 1]


def test_cache_key_covers_configuration_and_path() -> None:
    base = Cache(Path("/nonexistent"), Config().fingerprint())
    other = Cache(Path("/nonexistent"), Config(ignore=("GL101",)).fingerprint())
    assert base.key("a.py", b"x") != other.key("a.py", b"x")
    assert base.key("a.py", b"x") != base.key("b.py", b"x")
    assert base.key("a.py", b"x") != base.key("a.py", b"y")


def test_parallel_results_equal_single_process(tmp_path: Path) -> None:
    files = {f"m{i:02}.py": SIGMOIDS if i % 3 else "import torch\nx = (\n" for i in range(40)}
    paths = _tree(tmp_path, files)
    one = lint_tree(paths, Config(root=tmp_path), [GL101], RunOptions(jobs=1))
    many = lint_tree(paths, Config(root=tmp_path), [GL101], RunOptions(jobs=2))
    assert [r.findings for r in one] == [r.findings for r in many]
    assert [r.path for r in many] == sorted(r.path for r in many)


class ImportedRecurrentModel(Rule):
    """
    ## What it does
    Test rule: flags `Model()` calls whose class, defined in another file, has an RNN.

    ## Why is this bad?
    It exercises the project phase.
    """

    CODE = "GL199"
    SEVERITY = Severity.WARNING
    MESSAGE = "unused"
    VALID = [Valid("x = 1\n")]
    INVALID = [Invalid("x = 1\n")]

    def visit_Call(self, node: cst.Call) -> None:
        name = self.index.qualified(node.func)
        if name is not None and not name.startswith("torch"):
            self.defer(node, name)

    @classmethod
    def resolve_deferred(cls, item: Deferred, facts: ClassFacts, where: FileSummary) -> str | None:
        if facts.rnn is None:
            return None
        return f"`{facts.name}` ({where.path}:{facts.line}) holds an nn.{facts.rnn}"


def test_project_phase_joins_files_through_imports(tmp_path: Path) -> None:
    rnn = "from torch import nn\n\n\nclass Encoder(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.rnn = nn.GRU(4, 4)\n"
    paths = _tree(tmp_path, {
        "proj/models/__init__.py": "from .rnn import Encoder\n",
        "proj/models/rnn.py": rnn,
        "proj/models/cnn.py": "from torch import nn\nclass Net(nn.Module):\n    pass\n",
        "proj/train.py": "import torch\nfrom models import Encoder\nfrom models.cnn import Net\nm = Encoder()\nn = Net()\nk = Encoder()  # noqa: GL199\n",
    })
    (tmp_path / "proj" / "__init__.py").unlink(missing_ok=True)
    results = lint_tree(paths, Config(root=tmp_path), [ImportedRecurrentModel], RunOptions(jobs=1))
    found = [f for r in results for f in r.findings]
    assert [(Path(f.path).name, f.line) for f in found] == [("train.py", 4)]
    assert "models/rnn.py:4" in found[0].message and "nn.GRU" in found[0].message


def test_fixes_apply_in_order_and_skip_overlaps() -> None:
    text = "a = 1\nb = 2\n"
    one = Fix("one", (Edit(1, 5, 1, 6, "10"),))
    clash = Fix("clash", (Edit(1, 1, 1, 6, "z = 3"),))
    two = Fix("two", (Edit(2, 1, 2, 1, "# note\n"),))
    new, applied = apply_fixes(text, [clash, one, two])
    assert applied == 2
    assert new == "z = 3\n# note\nb = 2\n"


def test_a_fix_that_breaks_the_file_is_refused() -> None:
    with pytest.raises(FixError, match="would not parse"):
        check_parses("def (:\n", "x.py")


def test_atomic_write_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "model.py"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]
