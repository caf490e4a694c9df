"""The preview tier and test code: which rules run where."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.config import Config, ConfigError, load_config
from gradlint.engine import lint_source
from gradlint.findings import Severity
from gradlint.registry import all_rules, is_on_by_default, is_selected, rule_state
from gradlint.rule import Rule
from gradlint.suppression import is_test_path

HIGH_LR = """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=20)
"""
PLAIN_LIST = """\
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [nn.Linear(8, 8) for _ in range(3)]
"""


PREVIEW = Config(preview=True)


class PreviewRule(Rule):
    """## What it does\nA stand-in preview rule.\n\n## Why is this bad?\nIt is a test."""

    CODE = "GL199"
    SEVERITY = Severity.WARNING
    MESSAGE = "m"
    PREVIEW: ClassVar[bool] = True


def selected(config: Config) -> bool:
    return is_selected(
        PreviewRule.CODE, PreviewRule.name(), config, is_on_by_default(PreviewRule, config)
    )


def test_preview_rule_is_off_by_default_and_under_prefixes() -> None:
    assert not selected(Config())
    assert not selected(Config(select=("GL1",)))
    assert not selected(Config(select=("ALL",)))


def test_preview_rule_runs_with_preview_or_when_named() -> None:
    assert selected(Config(preview=True))
    assert selected(Config(preview=True, select=("GL1",)))
    assert selected(Config(select=("GL199",)))
    assert selected(Config(extend_select=("preview-rule",)))
    assert not selected(Config(preview=True, ignore=("GL199",)))


def test_listings_mark_preview_rules() -> None:
    assert rule_state(PreviewRule) == " (preview)"
    assert all(rule_state(rule) in ("", " (preview)") for rule in all_rules())
    assert any(rule.PREVIEW for rule in all_rules())


def test_preview_key_in_configuration(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.gradlint]\npreview = true\n")
    assert load_config(path).preview is True
    path.write_text('[tool.gradlint]\npreview = "yes"\n')
    with pytest.raises(ConfigError, match="'preview' must be true or false"):
        load_config(path)


def test_preview_changes_the_cache_key() -> None:
    assert Config(preview=True).fingerprint() != Config().fingerprint()


def test_preview_flag_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(HIGH_LR)
    for flag in ("--preview", "--no-preview"):
        result = CliRunner().invoke(cli, ["check", "--no-cache", flag, str(tmp_path)])
        assert result.exit_code in (0, 1), result.output


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_model.py",
        "test/model.py",
        "pkg/tests/unit/helpers.py",
        "test_x.py",
        "model_test.py",
        "conftest.py",
    ],
)
def test_test_paths_by_default(path: str) -> None:
    assert is_test_path(path, Config(root=Path.cwd()))


@pytest.mark.parametrize("path", ["train.py", "src/latest.py", "contest/model.py", "testing.py"])
def test_not_test_paths(path: str) -> None:
    assert not is_test_path(path, Config(root=Path.cwd()))


def test_training_rules_stay_quiet_in_tests() -> None:
    codes = {f.code for f in lint_source(HIGH_LR, "train.py", PREVIEW).findings}
    assert "GL115" in codes
    assert not lint_source(HIGH_LR, "tests/test_optim.py", PREVIEW).findings


def test_test_paths_setting_replaces_the_default() -> None:
    config = Config(test_paths=(), preview=True)
    codes = {f.code for f in lint_source(HIGH_LR, "tests/test_optim.py", config).findings}
    assert "GL115" in codes
    config = Config(test_paths=("checks",), preview=True)
    assert not lint_source(HIGH_LR, "checks/optim.py", config).findings


def test_rules_that_find_real_bugs_still_run_in_tests() -> None:
    codes = {f.code for f in lint_source(PLAIN_LIST, "tests/test_net.py", Config()).findings}
    assert codes == {"GL116"}
