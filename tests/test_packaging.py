"""A real, non-editable install into a fresh virtualenv works on its own.

The editable install the other tests use maps `rules/` onto `gradlint.rules` by a finder;
this test proves the built distribution ships that mapping, the data files and the entry
point. It builds with the outer environment's setuptools (`--no-build-isolation`, which
needs setuptools>=77 for the PEP 639 `license` string) and takes the runtime dependencies
from the outer environment, so it needs no network and runs in a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BAD_MODEL = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""
# build outputs, caches and virtualenvs stay behind when the source tree is copied
_NOT_COPIED = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache*", ".venv", "venv",
    ".ci-venv", "tests", "examples", "benchmarks", "docs",
)


def _setuptools_is_new_enough() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


def _run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with gradlint installed from a copy of this source tree."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=_NOT_COPIED, symlinks=True)
    env_dir = root / "env"
    try:
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(env_dir)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot create a virtualenv here: {exc}")
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    )
    # libcst, click and the build backend come from the outer environment, after the new
    # environment's own site-packages, so the installed gradlint shadows the editable one
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "_outer_env.pth").write_text("\n".join(outer) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-input",
               "--disable-pip-version-check", str(source)]
    if _setuptools_is_new_enough():  # else pip fetches the backend into an isolated build env
        command[-1:-1] = ["--no-build-isolation", "--no-index"]
    completed = _run(command, cwd=root)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return env_dir


def _bin(env_dir: Path, name: str) -> Path:
    return env_dir / ("Scripts" if os.name == "nt" else "bin") / name


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working folder far from the checkout, so nothing can import from it."""
    assert REPO not in tmp_path.parents
    return tmp_path


def test_installed_version(installed: Path, outside: Path) -> None:
    completed = _run([str(_bin(installed, "gradlint")), "--version"], cwd=outside)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("gradlint ")


def test_installed_rules_lists_gl101(installed: Path, outside: Path) -> None:
    completed = _run([str(_bin(installed, "gradlint")), "rules"], cwd=outside)
    assert completed.returncode == 0, completed.stderr
    assert any(line.split()[:2] == ["GL101", "deep-saturating-stack"]
               for line in completed.stdout.splitlines())


def test_installed_lints_a_bad_file(installed: Path, outside: Path) -> None:
    (outside / "net.py").write_text(BAD_MODEL, encoding="utf-8")
    completed = _run([str(_bin(installed, "gradlint")), "--select", "GL101", "net.py"], cwd=outside)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert completed.stdout.startswith("net.py:3:9: GL101 ")
    assert "Traceback" not in completed.stderr


def test_rules_are_imported_from_site_packages(installed: Path, outside: Path) -> None:
    script = (
        "import json, gradlint, gradlint.rules, gradlint.rules.deep_saturating_stack as r\n"
        "print(json.dumps([gradlint.__file__, gradlint.rules.__file__, r.__file__]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    completed = _run([str(_bin(installed, "python")), "-c", script], cwd=outside, env=env)
    assert completed.returncode == 0, completed.stderr
    for file in json.loads(completed.stdout):
        path = Path(file).resolve()
        assert installed.resolve() in path.parents, f"{file} was not imported from the new env"
        assert "site-packages" in path.parts
        assert REPO not in path.parents


def test_every_package_and_data_file_is_shipped(installed: Path, outside: Path) -> None:
    script = (
        "import importlib.resources as r, json\n"
        "g = r.files('gradlint')\n"
        "matcher = json.loads((g / 'data' / 'problem-matcher.json').read_text())\n"
        "print(json.dumps({'matcher': matcher, 'typed': (g / 'py.typed').is_file()}))\n"
    )
    completed = _run([str(_bin(installed, "python")), "-c", script], cwd=outside)
    assert completed.returncode == 0, completed.stderr
    shipped = json.loads(completed.stdout)
    assert shipped["typed"]
    assert shipped["matcher"]["problemMatcher"][0]["owner"] == "gradlint"
    packages = sorted(
        ".".join(("gradlint", *init.parent.relative_to(REPO / "gradlint").parts))
        for init in (REPO / "gradlint").rglob("__init__.py")
    )
    check = (
        "import importlib.util, json\n"
        f"print(json.dumps([p for p in {packages!r} if importlib.util.find_spec(p) is None]))\n"
    )
    completed = _run([str(_bin(installed, "python")), "-c", check], cwd=outside)
    assert completed.returncode == 0, completed.stderr
    missing = json.loads(completed.stdout)
    assert missing == [], f"add {missing} to [tool.setuptools] packages in pyproject.toml"
