"""The composite GitHub Action: its `run:` steps executed in bash as a runner would.

GitHub substitutes `${{ inputs.x }}` (and `${{ github.action_path }}`) into each step's
`env:` before running the script with `bash -e {0}`; this test does the same substitution
with the action's defaults and the inputs a workflow would give. The install step runs
against a stand-in `python3` that records its arguments instead of installing anything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML (installed with pre-commit) is missing")

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")
BAD = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""


def _steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = ACTION["runs"]["steps"]
    return steps


def _substitute(value: str, inputs: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("inputs."):
            key = name.removeprefix("inputs.")
            assert key in ACTION["inputs"], f"undeclared input {key}"
            return inputs.get(key, ACTION["inputs"][key].get("default", ""))
        if name == "github.action_path":
            return str(ROOT)
        raise AssertionError(f"the test does not know the expression {name}")

    return EXPRESSION.sub(one, value)


def _run_step(step: dict[str, Any], inputs: dict[str, str], cwd: Path, path: str,
              output: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADLINT_", "GITHUB_"))}
    env.update({key: _substitute(str(value), inputs) for key, value in step.get("env", {}).items()})
    env.update(PATH=path, GITHUB_OUTPUT=str(output), GITHUB_ACTION_PATH=str(ROOT), NO_COLOR="1")
    return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _step(name: str) -> dict[str, Any]:
    (step,) = [s for s in _steps() if s.get("name") == name]
    return step


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "net.py").write_text(BAD, encoding="utf-8")
    (tmp_path / "src" / "ok.py").write_text("import torch\n", encoding="utf-8")
    return tmp_path


def _path_with_gradlint(tmp: Path) -> str:
    executable = shutil.which("gradlint", path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.skip("the gradlint script is not installed beside this Python")
    return f"{Path(executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def test_action_is_a_composite_with_documented_inputs() -> None:
    assert ACTION["runs"]["using"] == "composite"
    assert {"paths", "args", "version", "sarif-file", "exit-zero"} <= set(ACTION["inputs"])
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description"), name
    for step in _steps():
        if "run" in step:
            assert step["shell"] == "bash"  # composite run steps must name their shell
            # inputs reach scripts only through env, so they cannot inject shell code
            assert "${{" not in step["run"], step["name"]


def test_lint_step_annotates_and_fails_on_findings(workspace: Path) -> None:
    output = workspace / "github_output"
    done = _run_step(_step("Run gradlint"), {"paths": "src"}, workspace,
                     _path_with_gradlint(workspace), output)
    assert done.returncode == 1, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("::")]
    assert line.startswith("::warning file=src/net.py,line=3,col=9,")
    assert "title=GL101 deep-saturating-stack::" in line
    assert output.read_text(encoding="utf-8") == "exit-code=1\n"


def test_lint_step_writes_sarif_and_passes_args(workspace: Path) -> None:
    output = workspace / "github_output"
    inputs = {"paths": "src/net.py src/ok.py", "args": "--select GL101 --fail-on error",
              "sarif-file": "reports/gradlint.sarif"}
    done = _run_step(_step("Run gradlint"), inputs, workspace, _path_with_gradlint(workspace),
                     output)
    assert done.returncode == 0, done.stdout + done.stderr  # a warning is below --fail-on error
    document = json.loads((workspace / "reports" / "gradlint.sarif").read_text(encoding="utf-8"))
    (result,) = document["runs"][0]["results"]
    assert result["ruleId"] == "GL101"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/net.py"
    assert output.read_text(encoding="utf-8") == "exit-code=0\n"


def test_exit_zero_input_reports_without_failing(workspace: Path) -> None:
    output = workspace / "github_output"
    done = _run_step(_step("Run gradlint"), {"paths": "src", "exit-zero": "true"}, workspace,
                     _path_with_gradlint(workspace), output)
    assert done.returncode == 0
    assert "::warning file=src/net.py" in done.stdout
    assert output.read_text(encoding="utf-8") == "exit-code=1\n"


def test_a_hostile_path_input_is_not_executed(workspace: Path) -> None:
    output = workspace / "github_output"
    done = _run_step(_step("Run gradlint"), {"paths": "src; touch pwned $(touch pwned2)"},
                     workspace, _path_with_gradlint(workspace), output)
    assert done.returncode == 2  # `;`, `touch` ... are just missing paths
    assert not (workspace / "pwned").exists() and not (workspace / "pwned2").exists()


def _fake_python(tmp: Path) -> str:
    bin_dir = tmp / "fake-bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp}/pip-args"\n', encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"


@pytest.mark.parametrize(("version", "spec"), [("", str(ROOT)), ("0.1.0", "gradlint==0.1.0"),
                                               ("v0.2.0", "gradlint==0.2.0")])
def test_install_step_installs_the_requested_version(
    tmp_path: Path, version: str, spec: str
) -> None:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX shell")
    done = _run_step(_step("Install gradlint"), {"version": version}, tmp_path,
                     _fake_python(tmp_path), tmp_path / "out")
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "pip-args").read_text(encoding="utf-8").splitlines()
    assert args[:3] == ["-m", "pip", "install"]
    assert args[-1] == spec


def test_example_workflow_uses_the_action() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "workflows" / "gradlint.yml").read_text("utf-8"))
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    ours = [s for s in steps if str(s.get("uses", "")).startswith("gradlint/gradlint@")]
    assert ours and set(ours[0].get("with", {})) <= set(ACTION["inputs"])
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("github/codeql-action/")]
    assert uploads and uploads[0]["uses"].startswith("github/codeql-action/upload-sarif@")
