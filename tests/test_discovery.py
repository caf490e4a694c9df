"""Which files a run lints: suffixes, default excludes, configured excludes, explicit paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.config import Config, load_config
from gradlint.discovery import DiscoveryError, discover

BAD_MODEL = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""

DEFAULT_EXCLUDED = [
    ".git/hooks/x.py", ".venv/lib/x.py", "venv/lib/x.py", "build/lib/x.py", "dist/x.py",
    "__pycache__/x.py", "node_modules/pkg/x.py", "lib/site-packages/torch/x.py",
    "pkg/__pycache__/x.py", ".tox/py311/x.py",
]


def make(root: Path, *names: str, body: str = BAD_MODEL) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")


def found(root: Path, config: Config | None = None, *paths: str) -> list[str]:
    config = config or Config(root=root)
    targets = [root / p for p in paths] or [root]
    return [p.relative_to(root).as_posix() for p in discover(targets, config)]


def test_python_files_are_found_recursively_and_sorted(tmp_path: Path) -> None:
    make(tmp_path, "b.py", "a.py", "pkg/c.pyi", "pkg/sub/d.py", "notes.txt", "script", "e.pyc")
    assert found(tmp_path) == ["a.py", "b.py", "pkg/c.pyi", "pkg/sub/d.py"]


@pytest.mark.parametrize("name", DEFAULT_EXCLUDED)
def test_default_excludes(tmp_path: Path, name: str) -> None:
    make(tmp_path, "keep.py", name)
    assert found(tmp_path) == ["keep.py"]


def test_any_virtualenv_is_excluded(tmp_path: Path) -> None:
    make(tmp_path, "keep.py", "my-env/lib/python3.11/x.py")
    (tmp_path / "my-env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert found(tmp_path) == ["keep.py"]


def test_exclude_and_extend_exclude(tmp_path: Path) -> None:
    make(tmp_path, "keep.py", "third_party/a.py", "gen/b_pb2.py", "src/c_pb2.py", "src/d.py")
    config = Config(root=tmp_path, exclude=("third_party/**",), extend_exclude=("*_pb2.py",))
    assert found(tmp_path, config) == ["keep.py", "src/d.py"]


def test_configured_exclude_keeps_the_default_excludes(tmp_path: Path) -> None:
    make(tmp_path, "keep.py", "third_party/a.py", "build/b.py", ".venv/c.py")
    config = Config(root=tmp_path, exclude=("third_party",))
    assert found(tmp_path, config) == ["keep.py"]


def test_patterns_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    make(tmp_path, "src/gen/a.py", "src/b.py", "gen/c.py")
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint]\nextend-exclude = ["src/gen"]\n')
    config = load_config(tmp_path / "pyproject.toml")
    assert found(tmp_path, config) == ["gen/c.py", "src/b.py"]
    assert found(tmp_path, config, "src") == ["src/b.py"]


def test_explicit_files_are_always_linted(tmp_path: Path) -> None:
    make(tmp_path, "build/x.py", "third_party/y.py", "notes.txt")
    config = Config(root=tmp_path, extend_exclude=("third_party",))
    assert found(tmp_path, config, "build/x.py", "third_party/y.py", "notes.txt") == [
        "build/x.py", "notes.txt", "third_party/y.py"
    ]


def test_an_excluded_folder_named_explicitly_is_walked(tmp_path: Path) -> None:
    make(tmp_path, "build/x.py", "build/lib/y.py", "build/dist/z.py")
    assert found(tmp_path, None, "build") == ["build/lib/y.py", "build/x.py"]


def test_duplicates_are_linted_once(tmp_path: Path) -> None:
    make(tmp_path, "a.py")
    assert found(tmp_path, None, "a.py", ".", "a.py") == ["a.py"]


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="missing.py: no such file or directory"):
        discover([tmp_path / "missing.py"], Config(root=tmp_path))


def test_cli_respects_excludes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, "model.py", "build/model.py", "vendor/model.py", "gen/model.py")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradlint]\nexclude = ["vendor"]\nextend-exclude = ["gen/**"]\n'
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--select", "GL101"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["model.py"]
    assert lines[-1] == "Found 1 finding in 1 file (1 checked)."
    result = CliRunner().invoke(cli, ["--select", "GL101", "vendor/model.py", "build/model.py"])
    assert [line.split(":")[0] for line in result.stdout.splitlines()[:-1]] == [
        "build/model.py", "vendor/model.py"
    ]
