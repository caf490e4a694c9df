"""Malformed configuration of every kind: one clear line on stderr, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.cli import cli

from .conftest import BAD

CASES = {
    "invalid_toml": ("[tool.gradlint\nselect = 1", "invalid TOML"),
    "wrong_type_select": ('[tool.gradlint]\nselect = "GL101"', "'select' must be a list of strings"),
    "wrong_item_type": ("[tool.gradlint]\nignore = [101]", "must be a list of strings"),
    "unknown_key": ("[tool.gradlint]\nselekt = []", "unknown key 'selekt' (did you mean 'select'?)"),
    "unknown_code": ('[tool.gradlint]\nselect = ["GL999"]', "unknown rule selector 'GL999'"),
    "unknown_prefix": ('[tool.gradlint]\nignore = ["XY1"]', "unknown rule selector 'XY1'"),
    "bad_severity": ('[tool.gradlint]\nseverity = { GL104 = "fatal" }', "must be one of error, warning, info"),
    "severity_not_table": ('[tool.gradlint]\nseverity = "error"', "'severity' must be a table"),
    "per_file_not_table": ('[tool.gradlint]\nper-file-ignores = ["x"]', "'per-file-ignores' must be a table"),
    "per_file_bad_code": ('[tool.gradlint.per-file-ignores]\n"tests/**" = ["GL9"]', "unknown rule selector 'GL9'"),
    "rule_table_unknown": ("[tool.gradlint.rules.no-such-rule]\ndepth = 3", "names no rule"),
    "rule_option_unknown": ("[tool.gradlint.rules.GL101]\ndeep = 3", "unknown option 'deep'"),
    "rule_option_type": ('[tool.gradlint.rules.GL101]\ndepth = "4"', "'depth' must be an integer"),
    "rule_option_bool": ("[tool.gradlint.rules.GL101]\ndepth = true", "'depth' must be an integer"),
    "rule_option_negative": ("[tool.gradlint.rules.GL101]\ndepth = -1", "must be >= 0"),
    "rules_not_tables": ("[tool.gradlint]\nrules = 3", "'rules' must hold one table per rule"),
    "exclude_not_list": ('[tool.gradlint]\nexclude = "build"', "'exclude' must be a list of strings"),
    "not_utf8": (b"[tool.gradlint]\nselect = ['\xff']".decode("latin-1"), "invalid TOML"),
    "nested_arrays": (
        "[tool.gradlint]\nselect = " + "[" * 100_000 + "]" * 100_000,
        "invalid TOML: arrays or tables nested too deeply",
    ),
    "nested_tables": (
        "[tool.gradlint]\nprobe = " + "{a = " * 5_000 + "1" + "}" * 5_000,
        "invalid TOML: arrays or tables nested too deeply",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_configuration(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, expected = CASES[case]
    monkeypatch.chdir(tmp_path)
    data = text.encode("latin-1") if case == "not_utf8" else text.encode()
    (tmp_path / "pyproject.toml").write_bytes(data)
    (tmp_path / "model.py").write_text(BAD)
    result = CliRunner().invoke(cli, ["--no-cache", "."])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("gradlint: error: ") and "pyproject.toml" in lines[0]
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--select", "NOPE", "."], "unknown rule selector 'NOPE'"),
        (["--config", "missing.toml", "."], "configuration file not found"),
        (["no/such/path.py"], "no such file or directory"),
        (["--format", "xml", "."], "Invalid value for '--format'"),
        (["--jobs", "-3", "."], "Invalid value for '-j' / '--jobs'"),
    ],
)
def test_bad_command_lines(args: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(BAD)
    result = CliRunner().invoke(cli, ["--no-cache", *args])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_an_unreadable_pyproject_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint]\nselect = ["GL1"]\n')
    (tmp_path / "model.py").write_text(BAD)
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name == "pyproject.toml":  # chmod 000 does not stop root: deny it here
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    result = CliRunner().invoke(cli, ["--no-cache", "."])
    assert result.exit_code == 2, result.output
    message = "cannot read configuration: Permission denied"
    assert result.output == f"gradlint: error: {tmp_path / 'pyproject.toml'}: {message}\n"
