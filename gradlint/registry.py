"""Find every Rule in gradlint.rules, check the declarations, and pick the selected ones."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gradlint.cache import write_gitignore
from gradlint.config import Config, ConfigError, did_you_mean, type_name
from gradlint.findings import Severity

if TYPE_CHECKING:
    from gradlint.rule import Rule

CODE_PATTERN = re.compile(r"^GL\d{3}$")

# Codes the engine and the runtime probe emit; selectable like rules, but not Rule classes.
ENGINE_CODES: Mapping[str, str] = {
    "GL000": "internal-error",
    "GL001": "unreadable-file",
}
PROBE_CODES: Mapping[str, str] = {
    "GL201": "vanishing-gradient",
    "GL202": "exploding-gradient",
    "GL203": "dead-relu",
    "GL204": "saturated-activation",
    "GL205": "non-finite",
    "GL206": "disconnected-parameter",
    "GL207": "symmetric-neurons",
}


class SelectionError(ConfigError):
    """A selector (code, prefix or name) that matches nothing."""


@lru_cache(maxsize=1)
def all_rules() -> tuple[type[Rule], ...]:
    """Every built-in rule class, sorted by code."""
    # rules/ is mapped to gradlint.rules by the build backend; mypy sees it as a folder
    import gradlint.rules as package  # type: ignore[import-not-found,unused-ignore]
    from gradlint.rule import Rule

    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Rule) and value is not Rule:
                if value.__module__ == module.__name__:
                    found.append(value)
    _check_declarations(found)
    return tuple(sorted(found, key=lambda rule: rule.CODE))


def _check_declarations(rules: Sequence[type[Rule]]) -> None:
    seen: dict[str, str] = {}
    for rule in rules:
        if not CODE_PATTERN.match(getattr(rule, "CODE", "")):
            raise TypeError(f"{rule.__name__}: CODE must look like GL123")
        for key in (rule.CODE, rule.name()):
            if key in seen or key in ENGINE_CODES or key in PROBE_CODES:
                raise TypeError(
                    f"{rule.__name__}: {key} is already used by {seen.get(key, 'gradlint')}"
                )
            seen[key] = rule.__name__


def known_codes() -> dict[str, str]:
    """code -> kebab name for every code gradlint can emit."""
    codes = dict(ENGINE_CODES)
    codes.update({rule.CODE: rule.name() for rule in known_rules()})
    codes.update(PROBE_CODES)
    return codes


def find_rule(code_or_name: str) -> type[Rule] | None:
    wanted = code_or_name.strip()
    for rule in known_rules():
        if wanted.upper() == rule.CODE or wanted.lower() == rule.name():
            return rule
    return None


def _match_length(selector: str, code: str, name: str) -> int:
    """How specific a match `selector` is for this code; 0 when it does not match."""
    if selector.upper() == "ALL":
        return 1
    if selector.lower() == name:
        return 100
    if code.startswith(selector.upper()):
        return 1 + len(selector)
    return 0


def validate_selectors(selectors: Iterable[str], where: str) -> None:
    codes = known_codes()
    for selector in selectors:
        if selector.upper() == "ALL" or selector.lower() in codes.values():
            continue
        if re.match(r"^GL\d{0,3}$", selector.upper()) and any(
            code.startswith(selector.upper()) for code in codes
        ):
            continue
        hint = did_you_mean(selector, [*codes, *codes.values()])
        raise SelectionError(f"{where}: unknown rule selector '{selector}'{hint}")


def is_selected(code: str, name: str, config: Config, default_enabled: bool = True) -> bool:
    """ruff's semantics: the most specific matching selector wins; ties go to ignore."""
    chosen = config.select if config.select is not None else None
    pick = 0
    for selector in (*(chosen or ()), *config.extend_select):
        length = _match_length(selector, code, name)
        # prefixes and ALL never switch on a rule that is off by default; its code or name does
        if length and (default_enabled or length >= 1 + len(code)):
            pick = max(pick, length)
    if chosen is None and default_enabled:
        pick = max(pick, 1)
    drop = max((_match_length(s, code, name) for s in config.ignore), default=0)
    return pick > drop


def selected_rules(config: Config) -> list[type[Rule]]:
    table = f"{config.source}: [tool.gradlint]" if config.source else "command line:"
    validate_selectors(config.select or (), f"{table} 'select'")
    validate_selectors(config.extend_select, f"{table} 'extend-select'")
    validate_selectors(config.ignore, f"{table} 'ignore'")
    for glob, codes in config.per_file_ignores:
        validate_selectors(codes, f"{table} 'per-file-ignores' entry '{glob}'")
    where = str(config.source) if config.source else "command line"
    for key in config.severity:
        validate_selectors([key], f"{where}: 'severity'")
    _check_rule_options(config.rule_options, where)
    return [
        rule
        for rule in known_rules()
        if is_selected(rule.CODE, rule.name(), config, is_on_by_default(rule, config))
    ]


def rule_state(rule: Any) -> str:
    """How a rule (class or catalogue entry) is switched on, for listings; '' by default."""
    if rule.PREVIEW:
        return " (preview)"
    return "" if rule.DEFAULT_ENABLED else " (off by default)"


def severity_text(rule: Any) -> str:
    """`warning`, or `warning (error when ...)` for a rule whose findings take two severities."""
    if rule.OTHER_SEVERITY is None:
        return str(rule.SEVERITY.value)
    return f"{rule.SEVERITY.value} ({rule.OTHER_SEVERITY.value} {rule.OTHER_SEVERITY_WHEN})"


def is_on_by_default(rule: type[Rule], config: Config) -> bool:
    """Whether the rule runs without being named: preview rules only with `preview`."""
    return rule.DEFAULT_ENABLED and (config.preview or not rule.PREVIEW)


def _check_rule_options(options: Mapping[str, Mapping[str, Any]], where: str) -> None:
    for key, values in options.items():
        rule = find_rule(key)
        if rule is None:
            hint = did_you_mean(
                key, [*(r.CODE for r in known_rules()), *(r.name() for r in known_rules())]
            )
            raise ConfigError(f"{where}: [tool.gradlint.rules.{key}] names no rule{hint}")
        for option, value in values.items():
            if option not in rule.OPTIONS:
                allowed = ", ".join(rule.OPTIONS) or "none"
                hint = did_you_mean(option, rule.OPTIONS)
                raise ConfigError(
                    f"{where}: [tool.gradlint.rules.{key}] unknown option '{option}'{hint}"
                    f" (options: {allowed})"
                )
            default = rule.OPTIONS[option]
            if type(value) is not type(default) and not (
                isinstance(default, float) and type(value) is int
            ):
                raise ConfigError(
                    f"{where}: [tool.gradlint.rules.{key}] '{option}' must be"
                    f" {type_name(default)}, got {type_name(value)}"
                )
            if isinstance(default, (int, float)) and not isinstance(default, bool) and value < 0:
                raise ConfigError(f"{where}: [tool.gradlint.rules.{key}] '{option}' must be >= 0")


def options_for(rule: type[Rule], config: Config) -> dict[str, Any]:
    merged = dict(rule.OPTIONS)
    for key in (rule.CODE, rule.name()):
        merged.update(config.rule_options.get(key, {}))
    return merged


def severity_for(rule: type[Rule], config: Config) -> Severity | None:
    """The severity the configuration sets for this rule, or None to keep the rule's own."""
    best, level = 0, None
    for key, value in config.severity.items():  # the most specific key wins; GL1 and ALL work too
        length = _match_length(key, rule.CODE, rule.name())
        if length > best:
            best, level = length, value
    return level


# -- the catalogue: what a fully cached run needs to know about the rules ---------------------

_CATALOGUE: list[tuple[type[Rule], ...]] = []  # set while a catalogue stands in for the rules


def known_rules() -> tuple[type[Rule], ...]:
    """The rules (or, inside `catalogue_in`, their catalogue entries) for selection and checks."""
    return _CATALOGUE[-1] if _CATALOGUE else all_rules()


class LazyRule:
    """A rule's declarations read from the catalogue, standing in for its class.

    Selection, configuration checks, the cache key and the output need only these, so a run
    whose every file is cached imports neither the rules nor libcst. Anything else (linting a
    file, the project phase) loads the class on first use.
    """

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.CODE: str = entry["code"]
        self.SEVERITY = Severity(entry["severity"])
        self.DEFAULT_ENABLED: bool = entry["default_enabled"]
        self.PREVIEW: bool = entry["preview"]
        other = entry["other_severity"]
        self.OTHER_SEVERITY = Severity(other) if other is not None else None
        self.OTHER_SEVERITY_WHEN: str = entry["other_severity_when"]
        self.IN_TESTS: bool = entry["in_tests"]
        self.OPTIONS: dict[str, Any] = dict(entry["options"])
        self.HINT: str | None = entry["hint"]
        self.NEEDS: tuple[str, ...] = tuple(entry["needs"])
        self.__doc__ = entry["doc"]
        self._name: str = entry["name"]
        self._summary: str = entry["summary"]
        self._where: tuple[str, str] = (entry["module"], entry["class"])
        self._loaded: type[Rule] | None = None

    def name(self) -> str:
        return self._name

    def summary(self) -> str:
        return self._summary

    def load(self) -> type[Rule]:
        if self._loaded is None:
            module, name = self._where
            self._loaded = cast("type[Rule]", getattr(importlib.import_module(module), name))
        return self._loaded

    def __getattr__(self, attribute: str) -> Any:  # only for what the catalogue does not hold
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.load(), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Rule:
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<catalogue entry {self.CODE} {self._name}>"


CATALOGUE_FILE = "rules-catalogue.json"


def describe(rule: type[Rule]) -> dict[str, Any]:
    return {
        "code": rule.CODE,
        "name": rule.name(),
        "severity": rule.SEVERITY.value,
        "default_enabled": rule.DEFAULT_ENABLED,
        "preview": rule.PREVIEW,
        "other_severity": rule.OTHER_SEVERITY.value if rule.OTHER_SEVERITY else None,
        "other_severity_when": rule.OTHER_SEVERITY_WHEN,
        "in_tests": rule.IN_TESTS,
        "options": dict(rule.OPTIONS),
        "hint": rule.HINT,
        "needs": list(rule.NEEDS),
        "doc": rule.__doc__,
        "summary": rule.summary(),
        "module": rule.__module__,
        "class": rule.__qualname__,
    }


@contextmanager
def catalogue_in(folder: Path | None, stamp: str) -> Iterator[None]:
    """Within the block, the rules are the catalogue entries saved in `folder` under `stamp`
    (gradlint's version and code) when there are such; otherwise the rules are imported as
    usual and the catalogue is written for the next run. `folder` None: no catalogue."""
    entries = _read_catalogue(folder, stamp) if folder is not None else None
    if entries is None:
        if folder is not None:
            _write_catalogue(folder, stamp)
        yield
        return
    _CATALOGUE.append(cast("tuple[type[Rule], ...]", tuple(LazyRule(e) for e in entries)))
    try:
        yield
    finally:
        _CATALOGUE.pop()


def _read_catalogue(folder: Path, stamp: str) -> list[dict[str, Any]] | None:
    try:
        data = json.loads((folder / CATALOGUE_FILE).read_text(encoding="utf-8"))
        if data["stamp"] != stamp:
            return None
        entries = data["rules"]
        for entry in entries:
            LazyRule(entry)  # every field present and well-typed enough to stand in
        return list(entries)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, stale or damaged: import the rules and write it again


def _write_catalogue(folder: Path, stamp: str) -> None:
    entries = [describe(rule) for rule in all_rules()]
    text = json.dumps({"stamp": stamp, "rules": entries})
    if json.loads(text)["rules"] != entries:
        return  # an option value JSON cannot carry exactly: keep importing the rules
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_gitignore(folder)
        fd, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, folder / CATALOGUE_FILE)
    except OSError:
        pass  # a read-only cache folder: the next run imports the rules again
