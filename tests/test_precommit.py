"""The pre-commit hook, run by the real pre-commit against a copy of this checkout.

`pre-commit try-repo` on a checkout with uncommitted changes only carries *tracked* files
into its shadow repository, so a new `.pre-commit-hooks.yaml` would be invisible to it.
The test therefore copies what the hook needs into a fresh git repository and commits it;
that is exactly what a user's `rev:` points at. pre-commit builds the hook's environment
with pip, which needs the package index; without it the test is skipped, naming the reason.
That test is slow (`-m slow`); the default run drives the same hook definition offline, as a
`repo: local` hook of `language: system` that runs this installation's gradlint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML (installed with pre-commit) is missing")

ROOT = Path(__file__).resolve().parent.parent
BAD = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""
GOOD = BAD.replace("Sigmoid", "ReLU")
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "No matching distribution",
           "Could not find a version that satisfies", "Network is unreachable")


def test_hook_manifest_is_valid() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "gradlint"
    assert hook["language"] == "python"
    assert set(hook["types_or"]) == {"python", "pyi", "jupyter"}
    assert hook["entry"].split()[0] == "gradlint"
    pre_commit = pytest.importorskip("pre_commit.clientlib")
    pre_commit.load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))  # pre-commit's own check


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(
        PRE_COMMIT_HOME=str(tmp / "pre-commit-home"), GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(tmp / "gitconfig"),
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def _git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def _hook_repository(tmp: Path, env: dict[str, str]) -> tuple[Path, str]:
    """The files pip and pre-commit need, committed in a fresh repository."""
    repo = tmp / "gradlint-hook"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".gradlint_cache")
    for name in ("gradlint", "rules"):
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, repo / name)
    _git(repo, env, "init", "-q")
    _git(repo, env, "add", "-A")
    _git(repo, env, "commit", "-q", "-m", "gradlint")
    return repo, _git(repo, env, "rev-parse", "HEAD")


def _pre_commit(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)
    log = Path(env["PRE_COMMIT_HOME"]) / "pre-commit.log"
    text = done.stdout + done.stderr + (log.read_text(errors="replace") if log.exists() else "")
    if "An unexpected error has occurred" in text and any(s in text for s in OFFLINE):
        pytest.skip("pre-commit could not build the hook environment: the package index is "
                    "not reachable from here")
    return done


@pytest.mark.slow  # pre-commit installs the hook with pip from the package index
def test_pre_commit_blocks_a_bad_commit_and_passes_a_clean_one(tmp_path: Path) -> None:
    pytest.importorskip("pre_commit", reason="pre-commit is not installed (dev extra)")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = _env(tmp_path)
    hook_repo, rev = _hook_repository(tmp_path, env)
    project = tmp_path / "project"
    project.mkdir()
    _git(project, env, "init", "-q")
    (project / "model.py").write_text(BAD, encoding="utf-8")
    (project / "notes.txt").write_text("not python\n", encoding="utf-8")
    _git(project, env, "add", "-A")

    tried = _pre_commit(project, env, "try-repo", str(hook_repo), "gradlint", "--ref", rev)
    assert tried.returncode == 1, tried.stdout + tried.stderr
    assert "model.py:3:9: GL101 4 saturating activations" in tried.stdout
    assert "notes.txt" not in tried.stdout  # only Python files are handed to the hook

    config = {"repos": [{"repo": str(hook_repo), "rev": rev, "hooks": [{"id": "gradlint"}]}]}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    _pre_commit(project, env, "install")
    _git(project, env, "add", "-A")
    blocked = subprocess.run(["git", "commit", "-m", "bad model"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=240)
    assert blocked.returncode != 0, "the commit went through"
    assert "GL101" in blocked.stdout + blocked.stderr
    with pytest.raises(subprocess.CalledProcessError):
        _git(project, env, "rev-parse", "--verify", "HEAD")  # nothing was committed

    (project / "model.py").write_text(GOOD, encoding="utf-8")
    _git(project, env, "add", "-A")
    passed = subprocess.run(["git", "commit", "-m", "good model"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=240)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "gradlint" in passed.stdout + passed.stderr and "Passed" in passed.stdout + passed.stderr


MODELS = """\
import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(32, 32, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]
"""
TRAIN = """\
import torch

from models import Encoder


def train(loader) -> None:
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
"""


def _local_hook() -> dict[str, object]:
    """The published hook, run from this installation instead of a pip-built environment."""
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    program, *args = hook["entry"].split()
    installed = Path(sys.executable).with_name(program)
    entry = [str(installed)] if installed.exists() else [sys.executable, "-m", "gradlint"]
    return {**hook, "entry": " ".join([*entry, *args]), "language": "system"}


def test_pre_commit_on_one_staged_script_reports_the_model_it_imports(tmp_path: Path) -> None:
    pytest.importorskip("pre_commit", reason="pre-commit is not installed (dev extra)")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = _env(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    _git(project, env, "init", "-q")
    (project / "models.py").write_text(MODELS, encoding="utf-8")
    _git(project, env, "add", "models.py")
    _git(project, env, "commit", "-q", "-m", "models")
    (project / "train.py").write_text(TRAIN, encoding="utf-8")
    # GL104 is a preview rule: the project asks for it
    (project / "pyproject.toml").write_text(
        '[tool.gradlint]\nextend-select = ["GL104"]\n', encoding="utf-8"
    )
    config = {"repos": [{"repo": "local", "hooks": [_local_hook()]}]}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    _git(project, env, "add", "-A")

    done = _pre_commit(project, env, "run", "--files", "train.py")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "train.py:12:9: GL104 this step trains `Encoder` (models.py:5)" in output
    assert "models.py:" not in output.replace("(models.py:5)", "")  # read, never reported
