"""Read `[tool.gradlint]` from pyproject.toml into a frozen Config."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

from gradlint.findings import Severity

DEFAULT_EXCLUDE = (
    ".bzr",
    ".direnv",
    ".eggs",
    ".git",
    ".git-rewrite",
    ".hg",
    ".mypy_cache",
    ".nox",
    ".pants.d",
    ".pytype",
    ".ruff_cache",
    ".svn",
    ".tox",
    ".venv",
    "venv",
    ".gradlint_cache",
    "__pypackages__",
    "__pycache__",
    "_build",
    "buck-out",
    "build",
    "dist",
    "node_modules",
    "site-packages",
)

_LIST_KEYS = ("select", "ignore", "extend-select", "exclude", "extend-exclude", "test-paths")
_KNOWN_KEYS = (*_LIST_KEYS, "per-file-ignores", "severity", "rules", "probe", "preview")
# What counts as test code (patterns as for exclude): most rules stay quiet there.
DEFAULT_TEST_PATHS = ("tests", "test", "test_*.py", "*_test.py", "conftest.py")


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the file and the key."""


@dataclass(frozen=True)
class Config:
    """The resolved settings for one run. CLI flags are merged in before linting."""

    select: tuple[str, ...] | None = None  # None: every rule enabled by default
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    severity: Mapping[str, Severity] = field(default_factory=dict)
    rule_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    probe: Mapping[str, Any] = field(default_factory=dict)
    preview: bool = False  # run the preview rules too
    test_paths: tuple[str, ...] = DEFAULT_TEST_PATHS
    root: Path = field(default_factory=Path.cwd)  # patterns are relative to this folder
    source: Path | None = None  # the file the settings came from

    def with_cli(self, **overrides: Any) -> Config:
        """A copy with the given (non-None) command-line settings applied on top."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def fingerprint(self) -> str:
        """Everything that can change findings, as text (cache keys use it)."""
        return repr(
            (
                self.select,
                self.ignore,
                self.extend_select,
                self.per_file_ignores,
                self.preview,
                self.test_paths,
                sorted((k, v.value) for k, v in self.severity.items()),
                sorted((k, sorted(v.items())) for k, v in self.rule_options.items()),
            )
        )


def find_config_file(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above `start` that has a [tool.gradlint] table."""
    folder = start.resolve()
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file() and _has_gradlint_table(path):
            return path
    return None


def _has_gradlint_table(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError as exc:  # it may hold the settings: linting without them would mislead
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror or exc}") from None
    return b"tool.gradlint" in data  # a cheap test; the loader validates the file properly


def load_config(path: Path | None) -> Config:
    """Parse and validate the file; without one, the defaults rooted at the working folder."""
    if path is None:
        return Config()
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: file is not UTF-8") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    tool = document.get("tool", {})
    table = tool.get("gradlint", {}) if isinstance(tool, dict) else {}  # `tool = 3` is not ours
    if path.name != "pyproject.toml" and not table:
        table = document  # a standalone gradlint.toml holds the keys at top level
    return parse_table(table, path)


def parse_table(table: Mapping[str, Any], path: Path) -> Config:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: [tool.gradlint] must be a table")
    where = f"{path}: [tool.gradlint]"
    for key in table:
        if key not in _KNOWN_KEYS:
            raise ConfigError(f"{where} unknown key '{key}'{did_you_mean(key, _KNOWN_KEYS)}")
    values: dict[str, Any] = {}
    for key in _LIST_KEYS:
        if key in table:
            values[key.replace("-", "_")] = _string_list(table[key], f"{where} '{key}'")
    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, Mapping):
        raise ConfigError(f"{where} 'per-file-ignores' must be a table of glob = [codes]")
    values["per_file_ignores"] = tuple(
        (str(glob), _string_list(codes, f"{where} 'per-file-ignores' entry '{glob}'"))
        for glob, codes in per_file.items()
    )
    values["severity"] = _severities(table.get("severity", {}), where)
    rules = table.get("rules", {})
    if not isinstance(rules, Mapping) or not all(isinstance(v, Mapping) for v in rules.values()):
        raise ConfigError(
            f"{where} 'rules' must hold one table per rule: [tool.gradlint.rules.GL101]"
        )
    values["rule_options"] = {str(k): dict(v) for k, v in rules.items()}
    probe = table.get("probe", {})
    if not isinstance(probe, Mapping):
        raise ConfigError(f"{where} 'probe' must be a table")
    values["probe"] = dict(probe)
    if "preview" in table:
        if not isinstance(table["preview"], bool):
            raise ConfigError(f"{where} 'preview' must be true or false")
        values["preview"] = table["preview"]
    return Config(root=path.parent.resolve(), source=path, **values)


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of strings, got {type_name(value)}")
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{where} must be a list of strings, found {type_name(item)}")
    return tuple(value)


def _severities(value: Any, where: str) -> dict[str, Severity]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} 'severity' must be a table like {{ GL104 = \"error\" }}")
    result: dict[str, Severity] = {}
    allowed = [s.value for s in Severity]
    for code, level in value.items():
        if level not in allowed:
            raise ConfigError(
                f"{where} 'severity.{code}' must be one of {', '.join(allowed)}, got {level!r}"
            )
        result[str(code)] = Severity(level)
    return result


def type_name(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        dict: "a table",
        list: "a list",
    }.get(type(value), type(value).__name__)


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def relative_to_root(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except (ValueError, RuntimeError, OSError):  # outside the root, or a symlink loop
        return path.as_posix()
