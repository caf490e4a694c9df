"""`[tool.gradlint]`: where it is found, what it changes, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gradlint.cli import cli
from gradlint.config import DEFAULT_EXCLUDE, Config, ConfigError, find_config_file, load_config
from gradlint.findings import Severity
from gradlint.registry import SelectionError, selected_rules

BAD_MODEL = """\
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
    nn.Linear(8, 8), nn.Sigmoid(),
)
"""
THREE_TANH = """\
from torch import nn

net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
                    nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "bad.py").write_text(BAD_MODEL, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(body, encoding="utf-8")
    return path


# -- errors: one line naming the file and the key, exit 2, no traceback ------------------

CONFIG_ERRORS = [
    ('[tool.gradlint]\nselec = ["GL1"]\n', ["unknown key 'selec'", "did you mean 'select'"]),
    ('[tool.gradlint]\nselect = "GL1"\n', ["'select'", "must be a list of strings", "a string"]),
    ("[tool.gradlint]\nignore = [101]\n", ["'ignore'", "must be a list of strings", "an integer"]),
    ("[tool.gradlint]\nexclude = 3\n", ["'exclude'", "list of strings"]),
    ("[tool.gradlint]\nextend-exclude = true\n", ["'extend-exclude'", "list of strings"]),
    ('[tool.gradlint]\nextend-select = "GL101"\n', ["'extend-select'", "list of strings"]),
    ('[tool.gradlint]\nselect = ["GL9"]\n', ["'select'", "unknown rule selector 'GL9'"]),
    ('[tool.gradlint]\nignore = ["GL101x"]\n', ["'ignore'", "unknown rule selector 'GL101x'"]),
    ('[tool.gradlint]\nextend-select = ["nope"]\n', ["'extend-select'", "'nope'"]),
    ('[tool.gradlint]\nper-file-ignores = ["GL101"]\n', ["'per-file-ignores'", "table"]),
    ('[tool.gradlint]\nper-file-ignores = { "a.py" = "GL101" }\n',
     ["'per-file-ignores' entry 'a.py'", "list of strings"]),
    ('[tool.gradlint]\nper-file-ignores = { "a.py" = ["GL9"] }\n',
     ["'per-file-ignores'", "unknown rule selector 'GL9'"]),
    ('[tool.gradlint]\nseverity = "error"\n', ["'severity'", "table"]),
    ('[tool.gradlint]\nseverity = { GL101 = "fatal" }\n',
     ["'severity.GL101'", "error, warning, info", "'fatal'"]),
    ('[tool.gradlint]\nseverity = { GL999 = "error" }\n', ["'severity'", "'GL999'"]),
    ("[tool.gradlint]\nrules = 3\n", ["'rules'", "one table per rule"]),
    ("[tool.gradlint.rules]\nGL101 = 4\n", ["'rules'", "one table per rule"]),
    ("[tool.gradlint.rules.GL199]\ndepth = 5\n", ["[tool.gradlint.rules.GL199]", "names no rule"]),
    ("[tool.gradlint.rules.GL101]\ndeep = 5\n",
     ["[tool.gradlint.rules.GL101]", "unknown option 'deep'", "did you mean 'depth'", "depth"]),
    ('[tool.gradlint.rules.GL101]\ndepth = "5"\n',
     ["[tool.gradlint.rules.GL101]", "'depth'", "must be an integer", "got a string"]),
    ("[tool.gradlint.rules.deep-saturating-stack]\ndepth = 2.5\n",
     ["[tool.gradlint.rules.deep-saturating-stack]", "'depth'", "an integer", "a number"]),
    ("[tool.gradlint.rules.GL101]\ndepth = -1\n", ["'depth'", ">= 0"]),
    ("[tool.gradlint.probe]\n[tool.gradlint]\nprobe = 1\n", ["invalid TOML"]),
    ('[tool.gradlint]\nselect = ["GL1"\n', ["invalid TOML"]),
    ("[tool.gradlint]\nselect = ['GL1']\nselect = ['GL1']\n", ["invalid TOML"]),
]


@pytest.mark.parametrize(
    ("body", "fragments"), CONFIG_ERRORS, ids=[f"error{i}" for i in range(len(CONFIG_ERRORS))]
)
def test_config_errors_are_one_line(project: Path, body: str, fragments: list[str]) -> None:
    path = write_config(project, body)
    result = run("bad.py")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"gradlint: error: {path}: ")
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_non_utf8_config_is_an_error(project: Path) -> None:
    path = project / "pyproject.toml"
    path.write_bytes(b"[tool.gradlint]\n# caf\xe9\nselect = []\n")
    result = run("--config", str(path), "bad.py")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert str(path) in line and "invalid TOML" in line


def test_missing_config_file(project: Path) -> None:
    result = run("--config", "nowhere/pyproject.toml", "bad.py")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line == "gradlint: error: nowhere/pyproject.toml: configuration file not found"


def test_config_error_from_load_config_names_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[tool.gradlint]\nseverty = {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'severty' \(did you mean 'severity'\?\)"):
        load_config(path)


def test_selection_error_is_a_config_error(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[tool.gradlint]\nselect = ["GL5"]\n'))
    with pytest.raises(SelectionError, match="'select': unknown rule selector 'GL5'"):
        selected_rules(config)


# -- what the settings do ----------------------------------------------------------------


def test_no_config_gives_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config == Config()
    assert (config.select, config.ignore, config.source) == (None, (), None)
    assert config.exclude == DEFAULT_EXCLUDE
    assert config.root == tmp_path


def test_settings_are_read(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[tool.gradlint]\nselect = ["GL1"]\nignore = ["GL102"]\nextend-select = ["GL001"]\n'
        'extend-exclude = ["gen/**"]\nseverity = { GL101 = "error" }\n'
        'per-file-ignores = { "tests/**" = ["GL101"] }\n'
        "[tool.gradlint.rules.GL101]\ndepth = 6\n",
    )
    config = load_config(path)
    assert config.select == ("GL1",)
    assert config.ignore == ("GL102",)
    assert config.extend_select == ("GL001",)
    assert config.extend_exclude == ("gen/**",)
    assert config.exclude == DEFAULT_EXCLUDE
    assert config.severity == {"GL101": Severity.ERROR}
    assert config.per_file_ignores == (("tests/**", ("GL101",)),)
    assert config.rule_options == {"GL101": {"depth": 6}}
    assert config.root == tmp_path.resolve()
    assert config.source == path


def test_nearest_pyproject_above_the_linted_path_wins(tmp_path: Path) -> None:
    write_config(tmp_path, '[tool.gradlint]\nignore = ["GL101"]\n')
    inner = tmp_path / "pkg"
    (inner / "sub").mkdir(parents=True)
    write_config(inner, '[tool.gradlint]\nselect = ["GL101"]\n')
    (inner / "sub" / "net.py").write_text(BAD_MODEL, encoding="utf-8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "net.py").write_text(BAD_MODEL, encoding="utf-8")
    assert run(str(inner / "sub")).exit_code == 1
    assert run(str(inner / "sub" / "net.py")).exit_code == 1
    assert run(str(tmp_path / "other")).exit_code == 0
    assert find_config_file(inner / "sub") == inner / "pyproject.toml"


def test_pyproject_without_gradlint_table_is_passed_over(tmp_path: Path) -> None:
    write_config(tmp_path, '[tool.gradlint]\nignore = ["GL101"]\n')
    inner = tmp_path / "pkg"
    inner.mkdir()
    write_config(inner, '[project]\nname = "x"\n[tool.ruff]\nline-length = 90\n')
    (inner / "net.py").write_text(BAD_MODEL, encoding="utf-8")
    assert find_config_file(inner) == tmp_path / "pyproject.toml"
    assert run(str(inner)).exit_code == 0


def test_explicit_config_is_used_instead_of_the_nearest(project: Path) -> None:
    write_config(project, '[tool.gradlint]\nignore = ["GL101"]\n')
    other = project / "conf"
    other.mkdir()
    explicit = write_config(other, '[tool.gradlint]\nselect = ["GL101"]\n')
    assert run("bad.py").exit_code == 0
    result = run("--config", str(explicit), "bad.py")
    assert result.exit_code == 1
    assert result.stdout.startswith("bad.py:3:9: GL101 ")


def test_rule_option_changes_the_rule(project: Path) -> None:
    (project / "three.py").write_text(THREE_TANH, encoding="utf-8")
    assert run("--select", "GL101", "three.py").exit_code == 0
    write_config(project, "[tool.gradlint.rules.GL101]\ndepth = 1\n")  # a tanh counts 1/2
    result = run("--select", "GL101", "three.py")
    assert result.exit_code == 1
    assert result.stdout.startswith("three.py:3:7: GL101 ")
    write_config(project, "[tool.gradlint.rules.deep-saturating-stack]\ndepth = 5\n")
    assert run("--select", "GL101", "bad.py").exit_code == 0


@pytest.mark.parametrize("key", ["GL101", "deep-saturating-stack", "GL1"])
def test_severity_override(project: Path, key: str) -> None:
    write_config(project, f'[tool.gradlint]\nseverity = {{ "{key}" = "error" }}\n')
    result = run("--select", "GL101", "--format", "json", "bad.py")
    assert result.exit_code == 1, result.output
    assert '"severity": "error"' in result.stdout


def test_most_specific_severity_key_wins(project: Path) -> None:
    write_config(project, '[tool.gradlint]\nseverity = { GL1 = "error", GL101 = "info" }\n')
    result = run("--select", "GL101", "--format", "json", "bad.py")
    assert '"severity": "info"' in result.stdout


def test_fail_on_respects_overridden_severity(project: Path) -> None:
    write_config(project, '[tool.gradlint]\nseverity = { GL101 = "info" }\n')
    assert run("--select", "GL101", "--fail-on", "warning", "bad.py").exit_code == 0
    assert run("--select", "GL101", "bad.py").exit_code == 1


def test_select_ignore_from_the_file(project: Path) -> None:
    write_config(project, '[tool.gradlint]\nignore = ["GL1"]\n')
    assert run("bad.py").exit_code == 0
    write_config(project, '[tool.gradlint]\nignore = ["GL1"]\nselect = ["GL101"]\n')
    assert run("bad.py").exit_code == 1, "the more specific select beats the prefix ignore"
    write_config(project, '[tool.gradlint]\nselect = ["deep-saturating-stack"]\n')
    assert run("bad.py").exit_code == 1
    write_config(project, '[tool.gradlint]\nselect = ["GL0"]\nextend-select = ["GL101"]\n')
    assert run("bad.py").exit_code == 1


def test_standalone_config_file_holds_keys_at_top_level(project: Path) -> None:
    path = project / "gradlint.toml"
    path.write_text('ignore = ["GL101"]\n', encoding="utf-8")
    assert run("--config", str(path), "bad.py").exit_code == 0
    path.write_text('ignor = ["GL101"]\n', encoding="utf-8")
    result = run("--config", str(path), "bad.py")
    assert result.exit_code == 2
    assert "unknown key 'ignor'" in result.stderr


def test_fingerprint_follows_the_settings(tmp_path: Path) -> None:
    first = load_config(write_config(tmp_path, "[tool.gradlint.rules.GL101]\ndepth = 4\n"))
    second = load_config(write_config(tmp_path, "[tool.gradlint.rules.GL101]\ndepth = 5\n"))
    assert first.fingerprint() != second.fingerprint()
    assert first.fingerprint() == load_config(
        write_config(tmp_path, "[tool.gradlint.rules.GL101]\ndepth = 4\n")
    ).fingerprint()
